using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using ModelSeal.Hpke;
using Npgsql;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Two <c>modelseal serve</c> processes on one PostgreSQL database, configured with the same trusted issuer and the
/// same entitlement rule, count each user's devices as one service (docs/deploy.md "Entitlement rules").
/// </summary>
[Trait("Backends", "own")]
public sealed class EntitlementMultiInstanceTests
{
    private const int Users = 10;
    private const int DevicesPerUser = 5;
    private const int MaxDevices = 3;
    private const int Releases = 1000;

    [Fact]
    public async Task Two_instances_keep_the_device_limit_per_user_exact_under_1000_concurrent_releases()
    {
        using var directory = new TempDirectory();
        string postgres = PostgresSchema.ConnectionString(directory.Sub("a"), create: true);
        using var idp = new ExternalIssuer("https://idp.example", directory.Sub("idp.json"));
        string config = directory.Sub("config.json");
        await File.WriteAllTextAsync(
            config,
            new JsonObject
            {
                ["RequestsPerMinutePerClient"] = 100_000,
                ["ReleasesPerMinutePerSubject"] = 100_000,
                ["TrustedIssuers"] = new JsonArray(new JsonObject { ["Issuer"] = idp.Issuer, ["JwksFile"] = idp.JwksFile }),
                ["Entitlements"] = new JsonObject
                {
                    ["Rules"] = new JsonArray(new JsonObject { ["Name"] = "three", ["Issuer"] = idp.Issuer, ["Models"] = new JsonArray("m"), ["MaxDevices"] = MaxDevices }),
                },
            }.ToJsonString(),
            TestContext.Current.CancellationToken);
        string[] arguments = ["--config", config];
        await using ServerProcess a = await ServerProcess.StartAsync(directory.Sub("a"), postgres, arguments);
        ServerProcess.ShareSecrets(directory.Sub("a"), directory.Sub("b"));
        await using ServerProcess b = await ServerProcess.StartAsync(directory.Sub("b"), postgres, arguments);
        ServerProcess[] instances = [a, b];
        string admin = await a.AdminTokenAsync();
        await a.CreateModelAsync(admin, "m");
        (await b.CreateVersionAsync(await b.AdminTokenAsync(), "m")).Key.Dispose();

        DateTimeOffset now = DateTimeOffset.UtcNow;
        string[] tokens = [.. Enumerable.Range(0, Users).Select(u => idp.Token($"user-{u}", "keys", now))];
        HpkeKeyPair[][] devices = [.. Enumerable.Range(0, Users).Select(_ => Enumerable.Range(0, DevicesPerUser).Select(_ => HpkeKeyPair.Generate()).ToArray())];
        try
        {
            var answers = new ConcurrentBag<(int User, int Device, Api Answer)>();
            await Parallel.ForEachAsync(
                Enumerable.Range(0, Releases),
                new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = TestContext.Current.CancellationToken },
                async (i, _) =>
                {
                    int u = i % Users;
                    int d = i / Users % DevicesPerUser;
                    answers.Add((u, d, await instances[i % 2].ReleaseAsync(tokens[u], "m", "latest", devices[u][d])));
                });

            Assert.Equal(Releases, answers.Count);
            Assert.All(answers.Where(x => x.Answer.Status != HttpStatusCode.OK), x => x.Answer.AssertProblem(HttpStatusCode.Forbidden, "device-limit"));
            using NpgsqlDataSource database = new NpgsqlDataSourceBuilder(postgres).Build();
            for (int u = 0; u < Users; u++)
            {
                var admitted = answers.Where(x => x.User == u && x.Answer.Status == HttpStatusCode.OK).Select(x => x.Device).ToHashSet();
                Assert.Equal(MaxDevices, admitted.Count);
                Assert.DoesNotContain(answers, x => x.User == u && x.Answer.Status != HttpStatusCode.OK && admitted.Contains(x.Device));
                Assert.Equal(MaxDevices, Count(database, $"SELECT COUNT(*) FROM user_devices d JOIN users u ON u.user_id = d.user_id WHERE u.subject = 'user-{u}'"));
            }

            Assert.Equal(Users, Count(database, "SELECT COUNT(*) FROM users"));
            Assert.Equal(answers.Count(x => x.Answer.Status == HttpStatusCode.OK), Count(database, "SELECT COUNT(*) FROM audit WHERE event = 'key.released' AND attributes LIKE '%\"rule\":\"three\"%'"));
        }
        finally
        {
            foreach (HpkeKeyPair pair in devices.SelectMany(d => d))
            {
                pair.Dispose();
            }
        }
    }

    private static long Count(NpgsqlDataSource database, string sql)
    {
        using NpgsqlCommand command = database.CreateCommand(sql);
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
