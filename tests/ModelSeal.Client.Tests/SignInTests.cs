using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;

namespace ModelSeal.Client.Tests;

/// <summary>
/// The app's own sign-in as the token source (SignInTokenSource), against the real key server trusting an identity
/// provider's JWKS file: no licence credential anywhere on the device.
/// </summary>
public sealed class SignInTests
{
    [Fact]
    public async Task A_signed_in_users_token_releases_the_key_and_the_model_opens_with_no_credential_file()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        await server.CreateUserLicenceAsync(idp, "alice@idp", ["classifier"]);
        string token = idp.Token("alice@idp");
        var callback = new SignInCallback(_ => token);
        var logs = new LogCapture();
        var counter = new ReleaseCounter();
        await using ServiceProvider services = SignInServices.Create(server.Url, callback, directory, counter, logs: logs);

        Assert.IsType<SignInTokenSource>(services.GetRequiredService<ITokenSource>());
        using ModelKey key = await services.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken);
        using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(sample.Sealed), key, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(model.Span.SequenceEqual(sample.Original));

        Assert.Equal([false], callback.Calls);
        Assert.Equal([token], counter.Bearers);
        ModelLease? lease = await services.GetRequiredService<ILeaseCache>().GetAsync(sample.Header.ModelId, sample.Header.ModelVersion, sample.Header.KeyId, TestContext.Current.CancellationToken);
        Assert.Equal("alice@idp", lease?.Subject);
        Assert.Equal("alice@idp", services.GetRequiredService<SignInTokenSource>().Subject);
        Assert.Empty(Directory.GetFiles(directory.Path, "*.credential", SearchOption.AllDirectories));
        Assert.DoesNotContain(logs.Lines, l => l.Contains(token.Split('.')[2], StringComparison.Ordinal) || l.Contains(token.Split('.')[1], StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_401_asks_the_callback_once_more_with_forceRefresh_and_retries_the_release_once()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        await server.CreateUserLicenceAsync(idp, "alice@idp", ["classifier"]);

        // The SDK's cached token is no longer accepted (here: signed with a key the server does not trust); a forced
        // refresh gets a good one.
        string stale = idp.ForgedToken("alice@idp");
        string fresh = idp.Token("alice@idp");
        var callback = new SignInCallback(force => force ? fresh : stale);
        var counter = new ReleaseCounter();
        await using (ServiceProvider services = SignInServices.Create(server.Url, callback, directory, counter))
        {
            using ModelKey key = await services.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken);
            Assert.Equal(sample.Header.KeyId, key.KeyId);
        }

        Assert.Equal([false, true], callback.Calls);
        Assert.Equal([stale, fresh], counter.Bearers);

        // Refused again after the forced refresh: Unauthorized, reported as for any 401; no third call, no third request.
        using var other = new TempDirectory();
        var refused = new SignInCallback(force => force ? idp.ForgedToken("alice@idp") : stale);
        var counted = new ReleaseCounter();
        await using (ServiceProvider services = SignInServices.Create(server.Url, refused, other, counted))
        {
            var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
            Assert.Equal((ModelKeyUnavailableReason.Unauthorized, 401), (e.Reason, e.StatusCode));
            Assert.DoesNotContain(stale.Split('.')[2], e.ToString(), StringComparison.Ordinal);
        }

        Assert.Equal([false, true], refused.Calls);
        Assert.Equal(2, counted.Releases);
    }

    [Fact]
    public async Task An_expired_token_by_the_clients_clock_is_refreshed_once_before_anything_is_sent()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        await server.CreateUserLicenceAsync(idp, "alice@idp", ["classifier"]);

        // The first token is valid for the server; only the client's clock (10 minutes ahead) says it has expired.
        var clock = new ManualTimeProvider();
        clock.Advance(TimeSpan.FromMinutes(10));
        string cached = idp.Token("alice@idp");
        string refreshed = idp.Token("alice@idp", expiresAt: clock.GetUtcNow().AddMinutes(5));
        var callback = new SignInCallback(force => force ? refreshed : cached);
        var counter = new ReleaseCounter();
        await using ServiceProvider services = SignInServices.Create(server.Url, callback, directory, counter, clock);

        using ModelKey key = await services.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken);
        Assert.Equal(sample.Header.KeyId, key.KeyId);
        Assert.Equal([false, true], callback.Calls);
        Assert.Equal([refreshed], counter.Bearers);
    }

    [Fact]
    public async Task A_token_still_expired_after_the_forced_refresh_is_sent_once_without_a_third_call()
    {
        string expired = TestIdentityProvider.Unsigned(new JsonObject { ["sub"] = "alice@idp", ["exp"] = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds() });
        var callback = new SignInCallback(_ => expired);
        var source = new SignInTokenSource(callback.GetTokenAsync);

        AccessToken token = await source.GetTokenAsync(TestContext.Current.CancellationToken);
        Assert.Equal(("alice@idp", expired), (token.Subject, token.Token));
        Assert.Equal([false, true], callback.Calls);
        Assert.DoesNotContain(expired, token.ToString(), StringComparison.Ordinal);

        // After a 401 the key source renews: exactly one more call, forced.
        await source.RenewAsync(TestContext.Current.CancellationToken);
        Assert.Equal([false, true, true], callback.Calls);
    }

    public static TheoryData<string, string> NotUsable => new()
    {
        { "opaque-access-token-8f3a9c2b7d", "not a JWT" },
        { "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2lnbmF0dXJl", "not a JWT" },
        { TestIdentityProvider.Unsigned(new JsonObject { ["exp"] = 4102444800L }), "without a 'sub'" },
        { TestIdentityProvider.Unsigned(new JsonObject { ["sub"] = 42, ["exp"] = 4102444800L }), "without a 'sub'" },
        { TestIdentityProvider.Unsigned(new JsonObject { ["sub"] = "alice@idp" }), "without a numeric 'exp'" },
        { TestIdentityProvider.Unsigned(new JsonObject { ["sub"] = "alice@idp", ["exp"] = "soon" }), "without a numeric 'exp'" },
        { "Bearer " + TestIdentityProvider.Unsigned(new JsonObject { ["sub"] = "alice@idp", ["exp"] = 4102444800L }), "Authorization header" },
    };

    [Theory]
    [MemberData(nameof(NotUsable))]
    public async Task A_value_that_is_not_a_usable_JWT_is_refused_before_anything_is_sent_and_never_shown(string value, string why)
    {
        using var directory = new TempDirectory();
        var callback = new SignInCallback(_ => value);
        var counter = new ReleaseCounter();
        await using ServiceProvider services = SignInServices.Create("http://127.0.0.1:9/", callback, directory, counter);
        SealedModelHeader header = SealedModelHeader.Create("classifier", "1", "classifier.1.k0000001", ModelContentType.Onnx, 1000, null);

        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => services.GetRequiredService<IModelKeySource>().GetKeyAsync(header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.Unauthorized, e.Reason);
        Assert.Null(e.StatusCode);
        Assert.Contains("SignInTokenCallback", e.Message, StringComparison.Ordinal);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        foreach (string part in value.Replace("Bearer ", string.Empty, StringComparison.Ordinal).Split('.'))
        {
            Assert.DoesNotContain(part, e.ToString(), StringComparison.Ordinal);
        }

        Assert.Equal([false], callback.Calls);
        Assert.Equal(0, counter.Releases);
    }

    [Theory]
    [InlineData("1900000000", 1900000000L)]
    [InlineData("1900000000.75", 1900000000L)]
    public void Exp_is_a_NumericDate_and_may_have_a_fraction(string exp, long seconds)
    {
        var claims = new JsonObject { ["sub"] = "alice@idp", ["exp"] = JsonNode.Parse(exp) };
        AccessToken token = SignInTokenSource.Parse(TestIdentityProvider.Unsigned(claims));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(seconds), token.ExpiresAt);
        Assert.Equal("alice@idp", token.Subject);
    }

    [Fact]
    public async Task No_token_and_an_exception_from_the_callback_reach_the_caller()
    {
        var empty = new SignInTokenSource((_, _) => ValueTask.FromResult(string.Empty));
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => empty.GetTokenAsync(TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.Unauthorized, e.Reason);
        Assert.Contains("returned no token", e.Message, StringComparison.Ordinal);

        // The app's own exception (MSAL's MsalUiRequiredException, say) is not wrapped: the app starts interactive sign-in.
        var signedOut = new SignInTokenSource((_, _) => throw new InvalidOperationException("interaction required"));
        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(() => signedOut.GetTokenAsync(TestContext.Current.CancellationToken).AsTask());
        Assert.Equal("interaction required", thrown.Message);
    }

    [Fact]
    public async Task A_lease_released_to_one_user_is_not_used_for_the_next_user_signed_in_on_the_device()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        await server.CreateUserLicenceAsync(idp, "alice@idp", ["classifier"]);
        await server.CreateUserLicenceAsync(idp, "bob@idp", ["classifier"]);
        string user = "alice@idp";
        var callback = new SignInCallback(_ => idp.Token(user));
        var counter = new ReleaseCounter();
        using var client = new TempDirectory();
        await using ServiceProvider services = SignInServices.Create(server.Url, callback, client, counter, configure: o => o.MaxRetryAttempts = 0);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        ILeaseCache leases = services.GetRequiredService<ILeaseCache>();
        Task<ModelLease?> Lease() => leases.GetAsync(sample.Header.ModelId, sample.Header.ModelVersion, sample.Header.KeyId, TestContext.Current.CancellationToken).AsTask();

        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        Assert.Equal("alice@idp", (await Lease())?.Subject);

        // Bob signs in on the same device: the server is asked for him (Alice's lease is not his), and his lease replaces hers.
        user = "bob@idp";
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        Assert.Equal(2, counter.Releases);
        Assert.Equal("bob@idp", (await Lease())?.Subject);

        // Alice again, then the server goes away: offline, her lease opens only for her.
        user = "alice@idp";
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        await server.StopAsync();
        user = "bob@idp";
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
        Assert.Equal("alice@idp", (await Lease())?.Subject); // kept: it is Alice's

        user = "alice@idp";
        using ModelKey offline = await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken);
        using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(sample.Sealed), offline, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(model.Span.SequenceEqual(sample.Original));
    }

    [Fact]
    public async Task Sign_out_removes_the_users_leases_so_the_model_no_longer_opens_offline()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        await server.CreateUserLicenceAsync(idp, "alice@idp", ["classifier"]);
        var callback = new SignInCallback(_ => idp.Token("alice@idp"));
        using var client = new TempDirectory();
        await using ServiceProvider services = SignInServices.Create(server.Url, callback, client, configure: o => o.MaxRetryAttempts = 0);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        await server.StopAsync();

        // Offline, the lease opens the model for Alice …
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();

        // … until she signs out.
        string subject = services.GetRequiredService<SignInTokenSource>().Subject!;
        Assert.Equal(1, await services.GetRequiredService<ILeaseCache>().RemoveSubjectAsync(subject, TestContext.Current.CancellationToken));
        Assert.Empty(Directory.GetFiles(client.Sub("leases"), "*.lease.json"));
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, e.Reason);
    }

    [Fact]
    public async Task RemoveSubjectAsync_removes_only_that_subjects_leases_in_both_caches()
    {
        using var directory = new TempDirectory();
        ILeaseCache[] caches = [new InMemoryLeaseCache(), new FileLeaseCache(directory.Sub("leases"))];
        foreach (ILeaseCache cache in caches)
        {
            DateTimeOffset until = DateTimeOffset.UtcNow.AddDays(1);
            await cache.StoreAsync(new ModelLease("a", "1", "a.1.k", "alice", "e", "s", until), TestContext.Current.CancellationToken);
            await cache.StoreAsync(new ModelLease("b", "1", "b.1.k", "alice", "e", "s", until), TestContext.Current.CancellationToken);
            await cache.StoreAsync(new ModelLease("c", "1", "c.1.k", "bob", "e", "s", until), TestContext.Current.CancellationToken);

            Assert.Equal(2, await cache.RemoveSubjectAsync("alice", TestContext.Current.CancellationToken));
            Assert.Null(await cache.GetAsync("a", "1", "a.1.k", TestContext.Current.CancellationToken));
            Assert.Null(await cache.GetAsync("b", "1", "b.1.k", TestContext.Current.CancellationToken));
            Assert.Equal("bob", (await cache.GetAsync("c", "1", "c.1.k", TestContext.Current.CancellationToken))?.Subject);
            Assert.Equal(0, await cache.RemoveSubjectAsync("alice", TestContext.Current.CancellationToken));
        }

        Assert.Equal(0, await new FileLeaseCache(directory.Sub("missing")).RemoveSubjectAsync("alice", TestContext.Current.CancellationToken));
    }
}
