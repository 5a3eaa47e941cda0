using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Client.Tests;

/// <summary>
/// The refusals of the app's sign-in path (docs/protocol.md section 2.5) as the client reports them: a user no
/// entitlement rule covers (<see cref="ModelKeyUnavailableReason.NoEntitlement"/>) and a blocked user
/// (<see cref="ModelKeyUnavailableReason.UserBlocked"/>). Signed, they remove the offline lease, as a revoked licence
/// does; unsigned (a proxy's, an attacker's), they never do.
/// </summary>
public sealed class SignInRefusalTests
{
    [Fact]
    public async Task A_blocked_user_is_UserBlocked_and_the_signed_refusal_drops_the_lease_an_unsigned_one_never()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp, [new EntitlementRuleOptions { Name = "everyone", Issuer = idp.Issuer, Models = ["classifier"], MaxDevices = 2 }]);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        var callback = new SignInCallback(_ => idp.Token("alice@idp"));
        var tamper = new Tamper();
        using var client = new TempDirectory();
        await using ServiceProvider services = SignInServices.Create(server.Url, callback, client, configure: o => o.MaxRetryAttempts = 0, tamper: tamper);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        Assert.Single(Leases(client));

        await server.SetUserBlockedAsync(idp, "alice@idp", block: true);

        // The server's real refusal with its signature removed, or replaced by another: not the server's word. The
        // lease opens the model and stays.
        foreach (Func<JsonObject, JsonObject> rewrite in new Func<JsonObject, JsonObject>[]
        {
            problem => { problem.Remove("signature"); problem.Remove("kid"); return problem; },
            problem => { problem["signature"] = System.Buffers.Text.Base64Url.EncodeToString(new byte[64]); return problem; },
        })
        {
            tamper.Release = (_, answer) => Tamper.Json(HttpStatusCode.Forbidden, rewrite(JsonNode.Parse(answer)!.AsObject()).ToJsonString(), "application/problem+json");
            using ModelKey offline = await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken);
            using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(sample.Sealed), offline, cancellationToken: TestContext.Current.CancellationToken);
            Assert.True(model.Span.SequenceEqual(sample.Original));
            Assert.Single(Leases(client));
        }

        Assert.Equal(2, tamper.Rewritten);

        // Without a lease the unsigned refusal is reported as it is, and still not definitive.
        using (var other = new TempDirectory())
        {
            await using ServiceProvider fresh = SignInServices.Create(server.Url, callback, other, configure: o => o.MaxRetryAttempts = 0, tamper: new Tamper { Release = tamper.Release });
            var unsigned = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => fresh.GetRequiredService<IModelKeySource>().GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
            Assert.Equal((ModelKeyUnavailableReason.UserBlocked, 403, false, false), (unsigned.Reason, unsigned.StatusCode, unsigned.IsSignedRefusal, unsigned.IsDefinitiveRefusal));
        }

        // The server's own, signed refusal: UserBlocked, and the lease is gone.
        tamper.Release = null;
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal((ModelKeyUnavailableReason.UserBlocked, 403, "user-blocked"), (e.Reason, e.StatusCode, e.ProblemCode));
        Assert.True(e.IsDefinitiveRefusal, e.Message);
        Assert.Contains("blocked the signed-in user", e.Message, StringComparison.Ordinal);
        Assert.Contains("until they are unblocked", e.Message, StringComparison.Ordinal);
        Assert.Empty(Leases(client));

        // Unblocked, the user gets the key (and a lease) again; blocked again and offline, nothing opens once the
        // signed refusal has removed the lease.
        await server.SetUserBlockedAsync(idp, "alice@idp", block: false);
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        Assert.Single(Leases(client));
        await server.SetUserBlockedAsync(idp, "alice@idp", block: true);
        Assert.Equal(ModelKeyUnavailableReason.UserBlocked, (await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask())).Reason);
        await server.StopAsync();
        var offline2 = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, offline2.Reason);
    }

    [Fact]
    public async Task A_user_no_rule_covers_is_NoEntitlement_and_a_rule_that_ends_drops_the_lease()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        var clock = new ManualTimeProvider();
        DateTimeOffset end = clock.GetUtcNow().AddHours(1);
        var promo = new EntitlementRuleOptions { Name = "promo", Issuer = idp.Issuer, Subjects = ["alice@idp"], Models = ["classifier"], NotAfter = end.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture) };
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp, [promo], clock);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        string user = "mallory@idp";
        var callback = new SignInCallback(_ => idp.Token(user, issuedAt: clock.GetUtcNow()));
        using var client = new TempDirectory();
        await using ServiceProvider services = SignInServices.Create(server.Url, callback, client, configure: o => o.MaxRetryAttempts = 0);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();

        // No rule covers Mallory: NoEntitlement, signed, with what to do.
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal((ModelKeyUnavailableReason.NoEntitlement, 403, "no-entitlement"), (e.Reason, e.StatusCode, e.ProblemCode));
        Assert.True(e.IsDefinitiveRefusal, e.Message);
        Assert.Contains("No licence and no entitlement rule of the key server covers the signed-in user", e.Message, StringComparison.Ordinal);
        Assert.Contains("ask the publisher for access", e.Message, StringComparison.Ordinal);
        Assert.Empty(Leases(client));

        // Alice, under the rule until it ends: a lease (capped by the rule's end, still valid on the device's clock) …
        user = "alice@idp";
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        ModelLease? lease = await services.GetRequiredService<ILeaseCache>().GetAsync(sample.Header.ModelId, sample.Header.ModelVersion, sample.Header.KeyId, TestContext.Current.CancellationToken);
        Assert.Equal(("alice@idp", end.ToUnixTimeSeconds()), (lease?.Subject, lease?.LeaseExpiresAt.ToUnixTimeSeconds()));

        // … until the rule has ended by the server's clock: the next release is refused, signed, and the lease deleted.
        clock.Advance(TimeSpan.FromHours(2));
        var ended = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal((ModelKeyUnavailableReason.NoEntitlement, true), (ended.Reason, ended.IsDefinitiveRefusal));
        Assert.Empty(Leases(client));
        await server.StopAsync();
        Assert.Equal(ModelKeyUnavailableReason.ServerUnavailable, (await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask())).Reason);
    }

    [Fact]
    public async Task A_signed_refusal_for_the_user_signed_in_now_leaves_another_users_lease_alone()
    {
        using var directory = new TempDirectory();
        using var idp = new TestIdentityProvider("https://idp.example", directory.Sub("jwks.json"));
        await using TestKeyServer server = await SignInServices.StartServerAsync(idp, [new EntitlementRuleOptions { Name = "everyone", Issuer = idp.Issuer, Models = ["classifier"], MaxDevices = 2 }]);
        SealedSample sample = await server.PublishSampleAsync("classifier");
        string user = "bob@idp";
        var callback = new SignInCallback(_ => idp.Token(user));
        using var client = new TempDirectory();
        await using ServiceProvider services = SignInServices.Create(server.Url, callback, client, configure: o => o.MaxRetryAttempts = 0);
        IModelKeySource source = services.GetRequiredService<IModelKeySource>();
        ILeaseCache leases = services.GetRequiredService<ILeaseCache>();
        Task<ModelLease?> Lease() => leases.GetAsync(sample.Header.ModelId, sample.Header.ModelVersion, sample.Header.KeyId, TestContext.Current.CancellationToken).AsTask();

        // Bob, then Alice on the same device: the lease is Alice's. Bob is blocked and signs in again.
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        user = "alice@idp";
        (await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken)).Dispose();
        await server.SetUserBlockedAsync(idp, "bob@idp", block: true);
        user = "bob@idp";
        var e = await Assert.ThrowsAsync<ModelKeyUnavailableException>(() => source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal((ModelKeyUnavailableReason.UserBlocked, true), (e.Reason, e.IsDefinitiveRefusal));

        // Bob's refusal says nothing about Alice: her lease stays and opens for her offline.
        Assert.Equal("alice@idp", (await Lease())?.Subject);
        await server.StopAsync();
        user = "alice@idp";
        using ModelKey offline = await source.GetKeyAsync(sample.Header, TestContext.Current.CancellationToken);
        using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(sample.Sealed), offline, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(model.Span.SequenceEqual(sample.Original));
    }

    private static string[] Leases(TempDirectory client) =>
        Directory.Exists(client.Sub("leases")) ? Directory.GetFiles(client.Sub("leases"), "*.lease.json") : [];
}
