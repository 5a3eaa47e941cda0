using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Domain;

namespace ModelSeal.Server.Tests;

/// <summary>
/// <c>GET /health/ready</c> is anonymous: its probe (a database read and a master-key wrap and unwrap, an HSM round
/// trip with PKCS#11) runs at most once per <see cref="Readiness.CacheDuration"/> of the server's clock.
/// </summary>
public sealed class ReadinessCacheTests
{
    [Fact]
    public async Task Readiness_probes_once_per_interval_however_often_it_is_asked()
    {
        var time = new ManualTime(new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero));
        await using TestServer server = await TestServer.StartAsync(o => o.Time = time);
        Readiness readiness = server.App.Services.GetRequiredService<Readiness>();
        int before = readiness.Checks;

        // Sequential and concurrent calls within the interval: one probe.
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
        }

        Api[] answers = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => server.GetAsync("/health/ready")));
        Assert.All(answers, answer => Assert.Equal(HttpStatusCode.OK, answer.Status));
        Assert.Equal(before + 1, readiness.Checks);

        // Just before the interval ends: still cached; at its end: probed again, once.
        time.Advance(Readiness.CacheDuration - TimeSpan.FromMilliseconds(1));
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
        Assert.Equal(before + 1, readiness.Checks);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
        Assert.Equal(before + 2, readiness.Checks);

        // A clock set back does not extend the cached answer.
        time.Advance(TimeSpan.FromMinutes(-10));
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/health/ready")).Status);
        Assert.Equal(before + 3, readiness.Checks);
    }
}
