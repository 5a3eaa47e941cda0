using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using ModelSeal.Hpke;
using Npgsql;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Several <c>modelseal serve</c> processes on one PostgreSQL database behave as one service (docs/deploy.md "Several
/// instances"), and an instance killed with SIGKILL mid-burst loses no release it acknowledged.
/// </summary>
[Trait("Backends", "own")]
public sealed class MultiInstanceTests
{
    private const int Licences = 10;
    private const int DevicesPerLicence = 5;
    private const int MaxDevices = 3;
    private const int Releases = 1000;

    [Fact]
    public async Task Two_instances_on_one_database_count_devices_audit_and_revoke_as_one()
    {
        using var directory = new TempDirectory();
        string postgres = PostgresSchema.ConnectionString(directory.Sub("a"), create: true);
        // No checkpoint by count during the test: one written between the two verifications below would make them differ.
        var noCheckpoints = new Dictionary<string, string> { ["MODELSEAL_Audit__CheckpointEvery"] = "0" };
        await using ServerProcess a = await ServerProcess.StartAsync(directory.Sub("a"), postgres, environment: noCheckpoints);
        ServerProcess.ShareSecrets(directory.Sub("a"), directory.Sub("b"));
        await using ServerProcess b = await ServerProcess.StartAsync(directory.Sub("b"), postgres, environment: noCheckpoints);
        ServerProcess[] instances = [a, b];
        string adminA = await a.AdminTokenAsync();
        string adminB = await b.AdminTokenAsync();

        // A model registered through one instance gets its version through the other.
        await a.CreateModelAsync(adminA, "m");
        (Release version, ModelKey created) = await b.CreateVersionAsync(adminB, "m");
        byte[] expectedKey = TestServer.KeyBytes(created);
        created.Dispose();

        // Licences created through both; each token issued by one instance is accepted by the other (shared key).
        var licences = new Licence[Licences];
        var tokens = new string[Licences];
        for (int l = 0; l < Licences; l++)
        {
            ServerProcess issuer = instances[l % 2];
            licences[l] = await issuer.CreateLicenceAsync(l % 2 == 0 ? adminA : adminB, $"fleet-{l}", ["m"], maxDevices: MaxDevices);
            tokens[l] = await instances[(l + 1) % 2].LicenceTokenAsync(licences[l]);
        }

        HpkeKeyPair[][] devices = [.. Enumerable.Range(0, Licences).Select(_ => Enumerable.Range(0, DevicesPerLicence).Select(_ => HpkeKeyPair.Generate()).ToArray())];
        using var database = new NpgsqlDataSourceBuilder(postgres).Build();
        long maxIdBefore = Count(database, "SELECT COALESCE(MAX(id), 0) FROM audit");

        // 1,000 releases at once, alternating between the instances; every licence sees more devices than it allows.
        var answers = new ConcurrentBag<(int Licence, int Device, Api Answer)>();
        await Parallel.ForEachAsync(
            Enumerable.Range(0, Releases),
            new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = TestContext.Current.CancellationToken },
            async (i, _) =>
            {
                int l = i % Licences;
                int d = i / Licences % DevicesPerLicence;
                answers.Add((l, d, await instances[i % 2].ReleaseAsync(tokens[l], "m", "latest", devices[l][d])));
            });

        Assert.Equal(Releases, answers.Count);
        var ok = answers.Where(x => x.Answer.Status == HttpStatusCode.OK).ToList();
        Assert.All(answers.Where(x => x.Answer.Status != HttpStatusCode.OK), x => x.Answer.AssertProblem(HttpStatusCode.Forbidden, "device-limit"));
        for (int l = 0; l < Licences; l++)
        {
            // Exactly MaxDevices devices per licence were admitted, across both instances, and only they got keys.
            var admitted = ok.Where(x => x.Licence == l).Select(x => x.Device).ToHashSet();
            Assert.Equal(MaxDevices, admitted.Count);
            Assert.DoesNotContain(answers, x => x.Licence == l && x.Answer.Status != HttpStatusCode.OK && admitted.Contains(x.Device));
            Assert.Equal(MaxDevices, Count(database, $"SELECT COUNT(*) FROM devices WHERE licence_id = '{licences[l].Id}'"));
        }

        foreach ((int l, int d, Api answer) in ok.Take(20))
        {
            using ModelKey key = Release.From(answer).Open(devices[l][d], licences[l].Subject);
            Assert.Equal(expectedKey, TestServer.KeyBytes(key));
        }

        // One audit record per success and per refusal, in one gap-free log whose chain verifies from either side.
        Assert.Equal(ok.Count, Count(database, $"SELECT COUNT(*) FROM audit WHERE event = 'key.released' AND id > {maxIdBefore}"));
        Assert.Equal(Releases - ok.Count, Count(database, $"SELECT COUNT(*) FROM audit WHERE event = 'key.refused' AND outcome = 'device-limit' AND id > {maxIdBefore}"));
        Assert.Equal(Count(database, "SELECT MAX(id) FROM audit"), Count(database, "SELECT COUNT(*) FROM audit"));
        JsonElement chainA = await AuditChainTests.VerifyAsync(a, adminA);
        JsonElement chainB = await AuditChainTests.VerifyAsync(b, adminB);
        Assert.True(chainA.GetProperty("verified").GetBoolean(), chainA.ToString());
        Assert.Equal(chainA.ToString(), chainB.ToString());
        Assert.Equal(Count(database, "SELECT COUNT(*) FROM audit"), chainA.GetProperty("records").GetInt64());

        // A revocation through A is refused by B on the very next request, for a device B had admitted.
        int revoked = 0;
        int admittedDevice = ok.First(x => x.Licence == revoked).Device;
        (await b.ReleaseAsync(tokens[revoked], "m", "latest", devices[revoked][admittedDevice])).AssertStatus(HttpStatusCode.OK);
        (await a.PostAsync($"/v1/admin/licences/{licences[revoked].Id}/revoke", null, adminA)).AssertStatus(HttpStatusCode.OK);
        (await b.ReleaseAsync(tokens[revoked], "m", "latest", devices[revoked][admittedDevice])).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");
        (await a.ReleaseAsync(tokens[revoked], "m", "latest", devices[revoked][admittedDevice])).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");

        // A device registered through one instance counts on the other.
        Licence single = await b.CreateLicenceAsync(adminB, "single", ["m"], maxDevices: 1);
        string singleToken = await a.LicenceTokenAsync(single);
        using HpkeKeyPair first = HpkeKeyPair.Generate();
        using HpkeKeyPair second = HpkeKeyPair.Generate();
        (await a.ReleaseAndOpenAsync(singleToken, single, "m", "latest", first)).Key.Dispose();
        (await b.ReleaseAsync(singleToken, "m", "latest", second)).AssertProblem(HttpStatusCode.Forbidden, "device-limit");
        (await b.ReleaseAndOpenAsync(singleToken, single, "m", "latest", first)).Key.Dispose();

        foreach (HpkeKeyPair device in devices.SelectMany(d => d))
        {
            device.Dispose();
        }
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task An_instance_killed_mid_burst_loses_no_acknowledged_release_and_the_chain_verifies(string store)
    {
        using var directory = new TempDirectory();
        string? postgres = store == "postgres" ? PostgresSchema.ConnectionString(directory.Sub("a"), create: true) : null;
        JsonElement before;
        string token;
        Licence licence;
        var acknowledged = new ConcurrentBag<string>();
        int failed = 0;
        await using (ServerProcess victim = await ServerProcess.StartAsync(directory.Sub("a"), postgres))
        {
            string admin = await victim.AdminTokenAsync();
            await victim.CreateModelAsync(admin, "m");
            (await victim.CreateVersionAsync(admin, "m")).Key.Dispose();
            licence = await victim.CreateLicenceAsync(admin, "burst", ["m"], maxDevices: 100_000);
            token = await victim.LicenceTokenAsync(licence);
            before = await AuditChainTests.VerifyAsync(victim, admin);

            // Workers release with a new device each time until the server is gone; at 150 acknowledged releases the
            // server is killed while the others are in flight.
            const int KillAt = 150;
            var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task[] workers = [.. Enumerable.Range(0, 24).Select(_ => Task.Run(async () =>
            {
                while (true)
                {
                    using HpkeKeyPair device = HpkeKeyPair.Generate();
                    Api answer;
                    try
                    {
                        answer = await victim.ReleaseAsync(token, "m", "latest", device);
                    }
                    catch (HttpRequestException)
                    {
                        Interlocked.Increment(ref failed);
                        return;
                    }

                    Assert.True(answer.Status == HttpStatusCode.OK, answer.Text);
                    acknowledged.Add(device.PublicKey.Thumbprint);
                    if (acknowledged.Count >= KillAt)
                    {
                        killed.TrySetResult();
                    }
                }
            }))];

            await killed.Task.WaitAsync(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken);
            await victim.KillAsync();
            await Task.WhenAll(workers);
        }

        Assert.True(failed > 0, "Requests were still in flight when the server was killed.");

        // A second instance (on PostgreSQL) or the same one restarted (on SQLite) finds every acknowledged release.
        ServerProcess survivor;
        if (postgres is null)
        {
            survivor = await ServerProcess.StartAsync(directory.Sub("a"));
        }
        else
        {
            ServerProcess.ShareSecrets(directory.Sub("a"), directory.Sub("b"));
            survivor = await ServerProcess.StartAsync(directory.Sub("b"), postgres);
        }

        await using (survivor)
        {
            string admin = await survivor.AdminTokenAsync();
            var audited = new HashSet<string>(StringComparer.Ordinal);
            long after = 0;
            while (true)
            {
                JsonElement page = (await survivor.GetAsync($"/v1/admin/audit?after={after}&limit=500", admin)).Json;
                foreach (JsonElement item in page.GetProperty("items").EnumerateArray())
                {
                    if (item.GetProperty("event").GetString() == "key.released")
                    {
                        audited.Add(item.GetProperty("device").GetString()!);
                    }
                }

                if (page.GetProperty("next").ValueKind == JsonValueKind.Null)
                {
                    break;
                }

                after = page.GetProperty("next").GetInt64();
            }

            Assert.DoesNotContain(acknowledged, d => !audited.Contains(d));
            JsonElement chain = await AuditChainTests.VerifyAsync(survivor, admin, before);
            Assert.True(chain.GetProperty("verified").GetBoolean(), chain.ToString());

            // The service goes on: the next release is recorded after the ones that survived the kill.
            using HpkeKeyPair device = HpkeKeyPair.Generate();
            (await survivor.ReleaseAndOpenAsync(await survivor.LicenceTokenAsync(licence), licence, "m", "latest", device)).Key.Dispose();
            Assert.True((await AuditChainTests.VerifyAsync(survivor, admin, chain)).GetProperty("verified").GetBoolean());
        }
    }

    private static long Count(NpgsqlDataSource database, string sql)
    {
        using NpgsqlCommand command = database.CreateCommand(sql);
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
