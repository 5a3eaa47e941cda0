using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The store's writer commits the writes waiting in its queue together (group commit). Each write still runs alone,
/// in queue order, sees the writes before it, and fails alone; callers complete only after the commit.
/// </summary>
public sealed class GroupCommitTests
{
    [Fact]
    [Trait("Store", "sqlite")]
    public async Task Queued_writes_share_a_transaction_yet_run_in_order_and_fail_alone()
    {
        using var directory = new TempDirectory();
        string path = directory.Sub("store.db");
        File.WriteAllBytes(path, []);
        using var store = new SqliteStore(path);
        store.Initialize();
        DateTimeOffset now = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);

        // Hold the writer inside a first write, so that everything queued meanwhile is taken as one batch.
        await using HeldWriter held = HeldWriter.Hold(store);

        const int Writes = 50;
        const int Failing = 25;
        var writes = new List<Task<long>>();
        for (int i = 0; i < Writes; i++)
        {
            int n = i;
            writes.Add(store.WriteAsync(s =>
            {
                long before = s.Audit.List(0, 500).Count;
                s.Audit.Append(new AuditEntry(AuditEvents.ModelCreated, "ok", "test", ModelId: $"m{n}"), now);
                return n == Failing ? throw new InvalidOperationException("this write fails") : before;
            }, TestContext.Current.CancellationToken));
        }

        Assert.Equal(Writes, store.QueuedWrites);
        Assert.All(writes, w => Assert.False(w.IsCompleted));
        await held.ReleaseAsync();

        // The failing write threw to its caller only, and took its own row with it.
        await Assert.ThrowsAsync<InvalidOperationException>(() => writes[Failing]);
        long[] seen = await Task.WhenAll(writes.Where((_, i) => i != Failing));
        Assert.Equal(Enumerable.Range(0, Writes - 1).Select(i => (long)i), seen);
        List<AuditRecord> records = store.Read(s => s.Audit.List(0, 500));
        Assert.Equal(Writes - 1, records.Count);
        Assert.DoesNotContain(records, r => r.Entry.ModelId == $"m{Failing}");
        Assert.Equal(Enumerable.Range(0, Writes).Where(i => i != Failing).Select(i => $"m{i}"), records.Select(r => r.Entry.ModelId));
        Assert.Equal(0, store.QueuedWrites);
    }

    [Fact]
    [Trait("Store", "sqlite")]
    public async Task Writes_commit_with_synchronous_full()
    {
        using var directory = new TempDirectory();
        string path = directory.Sub("store.db");
        File.WriteAllBytes(path, []);
        using var store = new SqliteStore(path);
        store.Initialize();
        Assert.Equal(2, await store.SynchronousAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    [Trait("Store", "sqlite")]
    public async Task A_write_cancelled_before_the_writer_takes_it_does_not_run()
    {
        using var directory = new TempDirectory();
        string path = directory.Sub("store.db");
        File.WriteAllBytes(path, []);
        using var store = new SqliteStore(path);
        store.Initialize();

        await using HeldWriter held = HeldWriter.Hold(store);

        using var cancel = new CancellationTokenSource();
        bool ran = false;
        Task<int> cancelled = store.WriteAsync(_ =>
        {
            ran = true;
            return 1;
        }, cancel.Token);
        await cancel.CancelAsync();
        await held.ReleaseAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.False(ran);
    }

    [Fact]
    public async Task Concurrent_releases_from_many_devices_never_exceed_the_device_limit_and_are_each_audited_once()
    {
        await using TestServer server = await TestServer.StartAsync(TestServer.WithoutRateLimits);
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (Release version, ModelKey created) = await server.CreateVersionAsync(admin, "m");
        created.Dispose();
        const int Limit = 10;
        const int Devices = 40;
        const int Rounds = 3;
        Licence licence = await server.CreateLicenceAsync(admin, "crowd", ["m"], maxDevices: Limit);
        string token = await server.LicenceTokenAsync(licence);
        HpkeKeyPair[] devices = Enumerable.Range(0, Devices).Select(_ => HpkeKeyPair.Generate()).ToArray();
        long maxIdBefore = server.Database.Count("SELECT COALESCE(MAX(id), 0) FROM audit");

        var answers = new ConcurrentBag<(int Device, Api Answer)>();
        await Parallel.ForEachAsync(
            Enumerable.Range(0, Devices * Rounds),
            new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = TestContext.Current.CancellationToken },
            async (i, _) => answers.Add((i % Devices, await server.ReleaseAsync(token, "m", "latest", devices[i % Devices]))));

        var ok = answers.Where(a => a.Answer.Status == HttpStatusCode.OK).ToList();
        var refused = answers.Where(a => a.Answer.Status != HttpStatusCode.OK).ToList();
        Assert.All(refused, a => a.Answer.AssertProblem(HttpStatusCode.Forbidden, "device-limit"));

        // Exactly the first Limit devices got in; a device is either always admitted or always refused.
        var admitted = ok.Select(a => a.Device).ToHashSet();
        Assert.Equal(Limit, admitted.Count);
        Assert.DoesNotContain(refused, a => admitted.Contains(a.Device));
        Assert.Equal(Limit * Rounds, ok.Count);
        foreach ((int device, Api answer) in ok)
        {
            using ModelKey key = Release.From(answer).Open(devices[device], licence.Subject);
            Assert.Equal(version.KeyId, key.KeyId);
        }

        Assert.Equal(Limit, server.Database.Count($"SELECT COUNT(*) FROM devices WHERE licence_id = '{licence.Id}'"));
        Assert.Equal(ok.Count, server.Database.Count($"SELECT COUNT(*) FROM audit WHERE id > {maxIdBefore} AND event = 'key.released'"));
        Assert.Equal(ok.Count, server.Database.Count($"SELECT COUNT(DISTINCT id) FROM audit WHERE id > {maxIdBefore} AND event = 'key.released'"));
        Assert.Equal(refused.Count, server.Database.Count($"SELECT COUNT(*) FROM audit WHERE id > {maxIdBefore} AND event = 'key.refused' AND outcome = 'device-limit'"));
        foreach (int device in admitted)
        {
            Assert.Equal(Rounds, server.Database.Count($"SELECT COUNT(*) FROM audit WHERE id > {maxIdBefore} AND event = 'key.released' AND device = '{devices[device].PublicKey.Thumbprint}'"));
        }

        foreach (HpkeKeyPair device in devices)
        {
            device.Dispose();
        }
    }

    [Fact]
    public async Task A_revocation_committed_ahead_of_a_release_in_the_same_batch_refuses_it()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (_, ModelKey created) = await server.CreateVersionAsync(admin, "m");
        created.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "revoked-meanwhile", ["m"]);
        string token = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        Store store = server.App.Services.GetRequiredService<Store>();

        // Hold the writer; queue the revocation, then a release whose checks before its transaction still see the
        // licence as valid. The release's transaction runs after the revocation and must refuse.
        await using HeldWriter held = HeldWriter.Hold(store);
        Task revoke = store.WriteAsync(s =>
        {
            s.Licences.Revoke(licence.Id, server.Now);
            return 0;
        }, TestContext.Current.CancellationToken);
        Task<Api> release = server.ReleaseAsync(token, "m", "latest", device);
        Assert.True(SpinWait.SpinUntil(() => store.QueuedWrites == 2 || release.IsCompleted, TimeSpan.FromSeconds(30)));
        Assert.False(release.IsCompleted);
        await held.ReleaseAsync();
        await revoke;
        (await release).AssertProblem(HttpStatusCode.Forbidden, "licence-revoked");

        Assert.Equal(1, server.Database.Count($"SELECT COUNT(*) FROM audit WHERE event = 'key.released' AND licence_id = '{licence.Id}'"));
        Assert.Equal(1, server.Database.Count($"SELECT COUNT(*) FROM audit WHERE event = 'key.refused' AND outcome = 'licence-revoked' AND licence_id = '{licence.Id}'"));
    }
}
