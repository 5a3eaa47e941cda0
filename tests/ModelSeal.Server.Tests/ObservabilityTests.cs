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
        (await server.PostAsync("/v1/keys/release", new { modelId = "metered", version = "latest", devicePublicKey = "x" })).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");

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
        Assert.Contains("provider=\"file\"", scrape.Text, StringComparison.Ordinal);

        // No subject, licence id, credential or token in the metrics.
        Assert.DoesNotContain(licence.Subject, scrape.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(licence.Id, scrape.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(token, scrape.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_metrics_endpoint_can_be_switched_off()
    {
        await using TestServer server = await TestServer.StartAsync(o => o.Metrics.Enabled = false);
        Api scrape = await server.GetAsync("/metrics");
        Assert.True(scrape.Status is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized, $"Got {(int)scrape.Status}: {scrape.Text}");
        Assert.DoesNotContain("modelseal_", scrape.Text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
    }

    [Fact]
    public async Task Readiness_is_503_when_the_database_cannot_be_opened_and_liveness_stays_200()
    {
        await using TestServer server = await TestServer.StartAsync();
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);

        // The store opens a connection per read (pooled): with the pool emptied and the file gone, opening fails.
        string database = Path.Combine(server.DataDirectory, "modelseal.db");
        string moved = database + ".moved";
        SqliteConnection.ClearAllPools();
        File.Move(database, moved);
        try
        {
            (await server.GetAsync("/health/ready")).AssertProblem(HttpStatusCode.ServiceUnavailable, "not-ready");
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/live")).Status);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Move(moved, database);
        }

        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
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
