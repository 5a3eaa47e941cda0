using Microsoft.Extensions.DependencyInjection;

namespace ModelSeal.Client.Tests;

/// <summary>Against the real key server: online release, offline leases, revocation, synchronization contexts.</summary>
public sealed class KeyServerTests
{
    [Fact]
    public async Task End_to_end_the_released_key_opens_the_sealed_model()
    {
        await using TestKeyServer server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        TestLicence licence = await server.CreateLicenceAsync("acme-app", ["classifier"]);
        using var client = new TempDirectory();
        var logs = new LogCapture();
        await using ServiceProvider services = ClientServices.ForLicence(server, licence, client, logs: logs);

        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        using ModelKey key = await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken);
        Assert.Equal(sample.Header.KeyId, key.KeyId);

        // Logged: ids and the device thumbprint; never the credential, the token or the device key.
        string credential = File.ReadAllText(licence.CredentialFile).Trim();
        AccessToken token = await services.GetRequiredService<ITokenSource>().GetTokenAsync(TestContext.Current.CancellationToken);
        string deviceKey = File.ReadAllText(client.Sub("device/device.key")).Split("private-key: ")[1].Trim();
        Assert.Contains(logs.Lines, l => l.Contains(sample.Header.KeyId, StringComparison.Ordinal) && l.Contains("released online", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.Contains(credential, StringComparison.Ordinal) || l.Contains(token.Token, StringComparison.Ordinal)
            || l.Contains(token.Token.Split('.')[2], StringComparison.Ordinal) || l.Contains(deviceKey, StringComparison.OrdinalIgnoreCase));

        using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(sample.Sealed), key, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(model.Span.SequenceEqual(sample.Original));

        // The device key and the lease are owner-only files.
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(client.Sub("device/device.key")));
            string lease = Assert.Single(Directory.GetFiles(client.Sub("leases"), "*.lease.json"));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(lease));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(client.Sub("leases")));
        }
    }

    [Fact]
    public async Task Offline_the_cached_lease_opens_the_model_until_it_expires()
    {
        await using TestKeyServer server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        TestLicence licence = await server.CreateLicenceAsync("acme-app", ["classifier"]);
        using var client = new TempDirectory();
        var clock = new ManualTimeProvider();
        await using ServiceProvider services = ClientServices.ForLicence(server, licence, client, clock);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();

        using (ModelKey online = await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken))
        {
            Assert.Equal(sample.Header.KeyId, online.KeyId);
        }

        ModelLease lease = (await services.GetRequiredService<ILeaseCache>().GetAsync(sample.Header.ModelId, sample.Header.ModelVersion, sample.Header.KeyId, TestContext.Current.CancellationToken))!;
        Assert.NotNull(lease);
        await server.StopAsync();

        // Offline, before expiry: the lease opens the model.
        clock.Advance(lease.LeaseExpiresAt - clock.GetUtcNow() - TimeSpan.FromMinutes(1));
        using (ModelKey offline = await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken))
        {
            using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(sample.Sealed), offline, cancellationToken: TestContext.Current.CancellationToken);
            Assert.True(model.Span.SequenceEqual(sample.Original));
        }

        // Past the expiry: LeaseExpired.
        clock.Advance(TimeSpan.FromMinutes(2));
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.LeaseExpired, e.Reason);
        Assert.Contains("expired", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_revoked_licence_is_refused_at_the_token_exchange_and_its_lease_is_removed()
    {
        // An app started after the revocation has no token yet: the server refuses the exchange itself (403
        // licence-revoked), and the client treats that like the refusal of a release.
        await using TestKeyServer server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        TestLicence licence = await server.CreateLicenceAsync("acme-app", ["classifier"]);
        using var client = new TempDirectory();
        await using (ServiceProvider first = ClientServices.ForLicence(server, licence, client))
        {
            (await first.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        }

        Assert.NotEmpty(Directory.GetFiles(client.Sub("leases"), "*.lease.json"));
        await server.RevokeLicenceAsync(licence.LicenceId, TestContext.Current.CancellationToken);
        await using ServiceProvider restarted = ClientServices.ForLicence(server, licence, client);
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => restarted.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal((ModelKeyUnavailableReason.LicenceRevoked, 403, "licence-revoked"), (e.Reason, e.StatusCode, e.ProblemCode));
        Assert.Contains("refused the token request", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(client.Sub("leases"), "*.lease.json"));
    }

    [Fact]
    public async Task A_revoked_licence_is_refused_online_and_its_lease_is_removed()
    {
        await using TestKeyServer server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        TestLicence licence = await server.CreateLicenceAsync("acme-app", ["classifier"]);
        using var client = new TempDirectory();
        await using ServiceProvider services = ClientServices.ForLicence(server, licence, client);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        ILeaseCache leases = services.GetRequiredService<ILeaseCache>();

        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        Assert.NotNull(await leases.GetAsync(sample.Header.ModelId, sample.Header.ModelVersion, sample.Header.KeyId, TestContext.Current.CancellationToken));

        await server.RevokeLicenceAsync(licence.LicenceId, TestContext.Current.CancellationToken);
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.LicenceRevoked, e.Reason);
        Assert.Equal(403, e.StatusCode);
        Assert.Equal(1, e.Attempts);
        Assert.Null(await leases.GetAsync(sample.Header.ModelId, sample.Header.ModelVersion, sample.Header.KeyId, TestContext.Current.CancellationToken));
        Assert.Empty(Directory.GetFiles(client.Sub("leases"), "*.lease.json"));

        // With the lease gone, going offline no longer helps.
        await server.StopAsync();
        var offline = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, offline.Reason);
    }

    [Fact]
    public async Task A_model_outside_the_licence_is_NotLicensed_and_a_wrong_credential_is_Unauthorized()
    {
        await using TestKeyServer server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        TestLicence other = await server.CreateLicenceAsync("acme-app", ["detector"]);
        using var client = new TempDirectory();
        await using (ServiceProvider services = ClientServices.ForLicence(server, other, client))
        {
            var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
            Assert.Equal(ModelKeyUnavailableReason.NotLicensed, e.Reason);
        }

        string wrong = client.Sub("wrong.credential");
        OwnerOnlyFile.Write(wrong, "not-the-credential");
        string secret = File.ReadAllText(other.CredentialFile);
        await using (ServiceProvider services = ClientServices.ForLicence(server, other with { CredentialFile = wrong }, client))
        {
            var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
            Assert.Equal(ModelKeyUnavailableReason.Unauthorized, e.Reason);
            Assert.DoesNotContain("not-the-credential", e.ToString(), StringComparison.Ordinal);
            Assert.DoesNotContain(secret, e.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_call_does_not_post_to_a_single_threaded_synchronization_context()
    {
        await using TestKeyServer server = await TestKeyServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        TestLicence licence = await server.CreateLicenceAsync("acme-app", ["classifier"]);
        using var client = new TempDirectory();
        await using ServiceProvider services = ClientServices.ForLicence(server, licence, client);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();

        var context = new CountingSynchronizationContext();
        SynchronizationContext? previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        ModelKey key;
        try
        {
            // Blocking on the result on the context's thread: any continuation posted back would be counted.
            key = BlockOn(source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken));
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        using (key)
        {
            Assert.Equal(sample.Header.KeyId, key.KeyId);
        }

        Assert.Equal(0, context.Posts);
    }

    /// <summary>Blocks like UI code that calls <c>.Result</c> (deliberately: that is what the test is about).</summary>
    private static ModelKey BlockOn(ValueTask<ModelKey> pending) => pending.AsTask().GetAwaiter().GetResult();

    /// <summary>Counts posts and runs them on the thread pool (so a failing test fails instead of deadlocking).</summary>
    private sealed class CountingSynchronizationContext : SynchronizationContext
    {
        private int _posts;

        public int Posts => Volatile.Read(ref _posts);

        public override void Post(SendOrPostCallback d, object? state)
        {
            Interlocked.Increment(ref _posts);
            ThreadPool.QueueUserWorkItem(_ => d(state));
        }
    }
}
