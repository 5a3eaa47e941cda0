using System.Globalization;
using System.Net;
using Microsoft.Data.Sqlite;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The meter "ModelSeal.Server" is one per server, but OpenTelemetry subscribes to meters by name, process-wide: a
/// server running in parallel would add its releases to this test's scrape. These tests run alone.
/// </summary>
[CollectionDefinition(nameof(RunsAlone), DisableParallelization = true)]
public sealed class RunsAlone;

/// <summary>The Prometheus scrape endpoint, the release metrics and readiness (docs/deploy.md "Observability").</summary>
[Collection(nameof(RunsAlone))]
public sealed class ObservabilityTests
{
    [Fact]
    public async Task Metrics_count_one_release_and_the_refusals_by_reason()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "metered");
        (Release created, ModelKey _) = await server.CreateVersionAsync(admin, "metered");
        Licence licence = await server.CreateLicenceAsync(admin, "customer-metrics", ["metered"], maxDevices: 1);
        string token = await server.LicenceTokenAsync(licence);

        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();
        await server.ReleaseAndOpenAsync(token, licence, "metered", created.Version, device);
        (await server.ReleaseAsync(token, "metered", created.Version, second)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
        (await server.PostAsync("/v1/keys/release", new { modelId = "metered", version = "latest", devicePublicKey = "x", nonce = ServerClient.Nonce(), protocol = 2 })).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");

        Api scrape = await server.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, scrape.Status);
        Assert.Equal("text/plain", scrape.ContentType);
        Assert.Equal(1, Sample(scrape.Text, "modelseal_key_releases_total", "model=\"metered\""));
        Assert.Equal(1, Sample(scrape.Text, "modelseal_key_refusals_total", "reason=\"device-limit\""));
        Assert.Equal(1, Sample(scrape.Text, "modelseal_key_refusals_total", "reason=\"unauthorized\""));
        Assert.Equal(1, Sample(scrape.Text, "modelseal_key_release_duration_milliseconds_count", "outcome=\"released\""));
        Assert.Equal(2, Sample(scrape.Text, "modelseal_key_release_duration_milliseconds_count", "outcome=\"refused\""));
        Assert.True(Sample(scrape.Text, "modelseal_store_write_duration_milliseconds_count", "outcome=\"commit\"") >= 1);
        Assert.True(Sample(scrape.Text, "modelseal_masterkey_operation_duration_milliseconds_count", "operation=\"unwrap\"") >= 1);
        Assert.Contains($"provider=\"{server.Options.MasterKey.Provider}\"", scrape.Text, StringComparison.Ordinal);
        Assert.Contains("http_server_request_duration_seconds", scrape.Text, StringComparison.Ordinal);

        // No subject, licence id, credential or token in the metrics.
        Assert.DoesNotContain(licence.Subject, scrape.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(licence.Id, scrape.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(token, scrape.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_release_is_traced_with_the_store_write_and_the_unwrap_as_children_and_no_secrets()
    {
        var stopped = new System.Collections.Concurrent.ConcurrentQueue<System.Diagnostics.Activity>();
        var releaseStopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == "ModelSeal.Server",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                stopped.Enqueue(activity);
                if (activity.OperationName == "modelseal.key.release" && activity.GetTagItem("modelseal.model") as string == "traced")
                {
                    releaseStopped.TrySetResult();
                }
            },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);

        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "traced");
        (Release created, ModelKey _) = await server.CreateVersionAsync(admin, "traced");
        Licence licence = await server.CreateLicenceAsync(admin, "customer-traces", ["traced"]);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        await server.ReleaseAndOpenAsync(token, licence, "traced", "latest", device);

        // The activity stops after the response is written: wait for it (bounded), no sleep.
        await releaseStopped.Task.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        System.Diagnostics.Activity release = stopped.Single(a => a.OperationName == "modelseal.key.release" && a.GetTagItem("modelseal.model") as string == "traced");
        Assert.Equal(created.Version, release.GetTagItem("modelseal.version"));
        Assert.Equal("released", release.GetTagItem("modelseal.outcome"));
        System.Diagnostics.Activity write = stopped.Single(a => a.OperationName == "modelseal.store.write" && a.ParentSpanId == release.SpanId);
        System.Diagnostics.Activity unwrap = stopped.Single(a => a.OperationName == "modelseal.masterkey.unwrap" && a.ParentSpanId == write.SpanId);
        Assert.Equal(release.TraceId, unwrap.TraceId);
        Assert.Equal(server.Options.MasterKey.Provider, unwrap.GetTagItem("modelseal.masterkey.provider"));

        foreach (System.Diagnostics.Activity activity in stopped.Where(a => a.TraceId == release.TraceId))
        {
            foreach (KeyValuePair<string, object?> tag in activity.TagObjects)
            {
                string value = Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? string.Empty;
                Assert.DoesNotContain(token, value, StringComparison.Ordinal);
                Assert.NotEqual(licence.Subject, value);
                Assert.NotEqual(licence.Credential, value);
            }
        }
    }

    [Fact]
    public async Task The_metrics_endpoint_can_be_switched_off()
    {
        await using TestServer server = await TestServer.StartAsync(o => o.Metrics.Enabled = false);
        Api scrape = await server.GetAsync("/metrics");
        Assert.True(scrape.Status == HttpStatusCode.NotFound, $"Got {(int)scrape.Status}: {scrape.Text}");
        Assert.DoesNotContain("modelseal_", scrape.Text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
    }

    [Fact]
    [Trait("Store", "sqlite")]
    public async Task Readiness_is_503_when_the_database_cannot_be_opened_and_liveness_stays_200()
    {
        var time = new ManualTime(DateTimeOffset.UtcNow);
        await using TestServer server = await TestServer.StartAsync(o => o.Time = time);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);

        // The store opens a connection per read (pooled): with the pool emptied and the file gone, opening fails.
        string database = Path.Combine(server.DataDirectory, "modelseal.db");
        string moved = database + ".moved";
        SqliteConnection.ClearAllPools();
        File.Move(database, moved);
        try
        {
            // The answer is cached for Readiness.CacheDuration of the server's clock.
            time.Advance(Domain.Readiness.CacheDuration);
            (await server.GetAsync("/health/ready")).AssertProblem(HttpStatusCode.ServiceUnavailable, "not-ready");
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/live")).Status);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Move(moved, database);
        }

        time.Advance(Domain.Readiness.CacheDuration);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
    }

    [Fact]
    public async Task Readiness_is_503_when_the_master_key_provider_is_unusable()
    {
        var time = new ManualTime(DateTimeOffset.UtcNow);
        await using TestServer server = await TestServer.StartAsync(o => o.Time = time);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
        time.Advance(Domain.Readiness.CacheDuration);

        // A disposed file provider has zeroed its keys: it refuses to wrap or unwrap instead of using them.
        Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<MasterKeys.MasterKeyRing>(server.App.Services).Dispose();
        (await server.GetAsync("/health/ready")).AssertProblem(HttpStatusCode.ServiceUnavailable, "not-ready");
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/live")).Status);
    }

    /// <summary>The value of the one sample of <paramref name="metric"/> whose labels contain <paramref name="label"/>.</summary>
    private static double Sample(string exposition, string metric, string? label)
    {
        List<double> values = [];
        foreach (string line in exposition.Split('\n'))
        {
            if (line.StartsWith('#') || !(line.StartsWith(metric + "{", StringComparison.Ordinal) || line.StartsWith(metric + " ", StringComparison.Ordinal)))
            {
                continue;
            }

            int end = line.IndexOf('}', StringComparison.Ordinal);
            string labels = end < 0 ? string.Empty : line[..end];
            if (label is not null && !labels.Contains(label, StringComparison.Ordinal))
            {
                continue;
            }

            string rest = (end < 0 ? line[metric.Length..] : line[(end + 1)..]).Trim();
            values.Add(double.Parse(rest.Split(' ')[0], CultureInfo.InvariantCulture));
        }

        Assert.True(values.Count == 1, $"Expected one sample of {metric} {label}, found {values.Count} in:\n{exposition}");
        return values[0];
    }
}
