using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Identical refusals within Audit:RefusalWindow are one key.refused record with a count, written when the window
/// ends (docs/protocol.md section 4.2); the server's clock drives the window, so no test waits for it.
/// </summary>
public sealed class AuditCoalescingTests
{
    private const string Refused = "SELECT COUNT(*) FROM audit WHERE event = 'key.refused'";
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Identical_refusals_within_a_window_are_one_record_with_their_count_written_at_its_end()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await StartAsync(time, window: 10);
        (string token, string admin) = await LicenceTokenAsync(server);
        AuditTrail audit = server.App.Services.GetRequiredService<AuditTrail>();
        using HpkeKeyPair device = HpkeKeyPair.Generate();

        for (int i = 0; i < 50; i++)
        {
            (await server.ReleaseAsync(token, "other", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
            if (i == 9)
            {
                time.Advance(TimeSpan.FromSeconds(3));
            }
        }

        Assert.Equal(1, audit.PendingRefusals);
        Assert.Equal(0, server.Database.Count(Refused));

        // Within the window nothing is written; at its end, one record for the fifty.
        await PassAsync(audit, time, TimeSpan.FromSeconds(6));
        Assert.Equal(0, server.Database.Count(Refused));
        await PassAsync(audit, time, TimeSpan.FromSeconds(1));
        JsonElement record = Assert.Single(await RefusalsAsync(server, admin));
        Assert.Equal("model-not-licensed", record.GetProperty("outcome").GetString());
        Assert.Equal("other", record.GetProperty("modelId").GetString());
        Assert.Equal(device.PublicKey.Thumbprint, record.GetProperty("device").GetString());
        Assert.Equal("50", record.GetProperty("attributes").GetProperty(AuditTrail.CountAttribute).GetString());
        Assert.Equal("2026-11-23T10:00:00Z", record.GetProperty("attributes").GetProperty(AuditTrail.FirstAtAttribute).GetString());
        Assert.Equal("2026-11-23T10:00:03Z", record.GetProperty("attributes").GetProperty(AuditTrail.LastAtAttribute).GetString());
        Assert.Equal("2026-11-23T10:00:10Z", record.GetProperty("at").GetString());
        Assert.Equal(0, audit.PendingRefusals);

        // The next refusal opens a new window.
        (await server.ReleaseAsync(token, "other", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
        await PassAsync(audit, time, TimeSpan.FromSeconds(10));
        Assert.Equal(["50", "1"], (await RefusalsAsync(server, admin)).Select(r => r.GetProperty("attributes").GetProperty(AuditTrail.CountAttribute).GetString()));
        JsonElement chain = await AuditChainTests.VerifyAsync(server, admin);
        Assert.True(chain.GetProperty("verified").GetBoolean(), chain.ToString());
    }

    [Fact]
    public async Task Refusals_that_differ_in_any_field_are_separate_records()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await StartAsync(time, window: 10);
        (string token, string admin) = await LicenceTokenAsync(server);
        AuditTrail audit = server.App.Services.GetRequiredService<AuditTrail>();
        using HpkeKeyPair a = HpkeKeyPair.Generate();
        using HpkeKeyPair b = HpkeKeyPair.Generate();

        // Another device, another model, another version (and so another outcome): four records.
        for (int i = 0; i < 3; i++)
        {
            (await server.ReleaseAsync(token, "other", "latest", a)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
            (await server.ReleaseAsync(token, "other", "latest", b)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
            (await server.ReleaseAsync(token, "third", "latest", a)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
            (await server.ReleaseAsync(token, "m", "9", a)).AssertProblem(HttpStatusCode.NotFound, "version-not-found");
        }

        Assert.Equal(4, audit.PendingRefusals);
        await PassAsync(audit, time, TimeSpan.FromSeconds(10));
        List<JsonElement> records = await RefusalsAsync(server, admin);
        Assert.Equal(
            [("other", a.PublicKey.Thumbprint, "model-not-licensed"), ("other", b.PublicKey.Thumbprint, "model-not-licensed"), ("third", a.PublicKey.Thumbprint, "model-not-licensed"), ("m", a.PublicKey.Thumbprint, "version-not-found")],
            records.Select(r => (r.GetProperty("modelId").GetString(), r.GetProperty("device").GetString(), r.GetProperty("outcome").GetString())));
        Assert.All(records, r => Assert.Equal("3", r.GetProperty("attributes").GetProperty(AuditTrail.CountAttribute).GetString()));
        JsonElement chain = await AuditChainTests.VerifyAsync(server, admin);
        Assert.True(chain.GetProperty("verified").GetBoolean(), chain.ToString());
    }

    [Fact]
    public async Task A_zero_window_writes_one_record_per_refusal_at_once()
    {
        await using TestServer server = await StartAsync(new ManualTime(Start), window: 0);
        (string token, string admin) = await LicenceTokenAsync(server);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        for (int i = 0; i < 5; i++)
        {
            (await server.ReleaseAsync(token, "other", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
        }

        List<JsonElement> records = await RefusalsAsync(server, admin);
        Assert.Equal(5, records.Count);
        Assert.All(records, r => Assert.Equal(JsonValueKind.Null, r.GetProperty("attributes").ValueKind));
    }

    [Fact]
    public async Task Stopping_the_server_writes_the_pending_refusals_and_later_ones_are_written_at_once()
    {
        using var data = new TempDirectory();
        var time = new ManualTime(Start);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        await using (TestServer server = await StartAsync(time, window: 60, data.Sub("data")))
        {
            (string token, _) = await LicenceTokenAsync(server);
            for (int i = 0; i < 7; i++)
            {
                (await server.ReleaseAsync(token, "other", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
            }

            Assert.Equal(0, server.Database.Count(Refused));
            AuditTrail audit = server.App.Services.GetRequiredService<AuditTrail>();
            await audit.StopAsync(TestContext.Current.CancellationToken);
            Assert.Equal(1, server.Database.Count(Refused));

            // Stopped, the trail writes each refusal on its own (the server may still be answering).
            (await server.ReleaseAsync(token, "other", "latest", device)).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");
            Assert.Equal(2, server.Database.Count(Refused));
        }

        await using (TestServer server = await StartAsync(time, window: 60, data.Sub("data")))
        {
            string admin = await server.AdminTokenAsync();
            Assert.Equal(["7", null], (await RefusalsAsync(server, admin)).Select(r => r.GetProperty("attributes") is { ValueKind: JsonValueKind.Object } a ? a.GetProperty(AuditTrail.CountAttribute).GetString() : null));
            JsonElement chain = await AuditChainTests.VerifyAsync(server, admin);
            Assert.True(chain.GetProperty("verified").GetBoolean(), chain.ToString());
        }
    }

    [Fact]
    public async Task A_full_window_is_written_early_and_refusals_beyond_the_cap_meanwhile_are_one_overflow_record()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await StartAsync(time, window: 10, configure: o => o.Audit.MaxPendingRefusals = 3);
        (string token, string admin) = await LicenceTokenAsync(server);
        AuditTrail audit = server.App.Services.GetRequiredService<AuditTrail>();
        Store store = server.App.Services.GetRequiredService<Store>();
        HpkeKeyPair[] devices = [.. Enumerable.Range(0, 8).Select(_ => HpkeKeyPair.Generate())];
        try
        {
            async Task RefuseAsync(int device) =>
                (await server.ReleaseAsync(token, "other", "latest", devices[device])).AssertProblem(HttpStatusCode.Forbidden, "model-not-licensed");

            await using (HeldWriter held = HeldWriter.Hold(store))
            {
                // The third distinct refusal fills the window: it is taken at once (its write waits for the writer).
                for (int i = 0; i < 3; i++)
                {
                    await RefuseAsync(i);
                }

                Assert.True(SpinWait.SpinUntil(() => audit.PendingRefusals == 0 && store.QueuedWrites == 1, TimeSpan.FromSeconds(30)));

                // The next window fills up while the first is being written; two more distinct refusals overflow.
                for (int i = 3; i < 8; i++)
                {
                    await RefuseAsync(i);
                }

                Assert.Equal(3, audit.PendingRefusals);
                await held.ReleaseAsync();
            }

            // The full window woke a pass too; passes run one at a time, so after this one both windows are written.
            await audit.RunPassAsync(final: false, TestContext.Current.CancellationToken);

            List<JsonElement> records = await RefusalsAsync(server, admin);
            Assert.Equal(
                [.. devices.Take(6).Select(d => (d.PublicKey.Thumbprint, "model-not-licensed", "1")), (null, AuditTrail.OverflowOutcome, "2")],
                records.Select(r => (r.GetProperty("device").GetString(), r.GetProperty("outcome").GetString(), r.GetProperty("attributes").GetProperty(AuditTrail.CountAttribute).GetString())));
            Assert.Equal(0, audit.PendingRefusals);
        }
        finally
        {
            foreach (HpkeKeyPair device in devices)
            {
                device.Dispose();
            }
        }
    }

    private static Task<TestServer> StartAsync(ManualTime time, int window, string? dataDirectory = null, Action<Configuration.ServerOptions>? configure = null) =>
        TestServer.StartAsync(
            options =>
            {
                TestServer.WithoutRateLimits(options);
                options.Time = time;
                options.Audit.RefusalWindow = TimeSpan.FromSeconds(window);
                configure?.Invoke(options);
            },
            dataDirectory);

    /// <summary>A licence for model m (with a version), and a token for it.</summary>
    private static async Task<(string Token, string Admin)> LicenceTokenAsync(TestServer server)
    {
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (Release _, ModelKey key) = await server.CreateVersionAsync(admin, "m");
        key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "coalesced", ["m"]);
        return (await server.LicenceTokenAsync(licence), admin);
    }

    /// <summary>Moves the clock and waits for the background pass that this starts.</summary>
    internal static async Task PassAsync(AuditTrail audit, ManualTime time, TimeSpan by)
    {
        time.Advance(by);
        await audit.PassAsync(time.Now);
    }

    private static async Task<List<JsonElement>> RefusalsAsync(TestServer server, string admin) =>
        [.. (await server.GetAsync("/v1/admin/audit?limit=500", admin)).Json.GetProperty("items").EnumerateArray().Where(r => r.GetProperty("event").GetString() == "key.refused")];
}
