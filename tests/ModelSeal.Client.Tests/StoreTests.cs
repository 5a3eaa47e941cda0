using ModelSeal.Hpke;

namespace ModelSeal.Client.Tests;

public sealed class StoreTests
{
    [Fact]
    public async Task The_file_device_key_is_created_owner_only_and_read_back()
    {
        using var directory = new TempDirectory();
        string path = directory.Sub("keys/device.key");
        byte[] first;
        using (var store = new FileDeviceKeyStore(path))
        {
            first = (await store.GetOrCreateAsync(TestContext.Current.CancellationToken)).PublicKey.Encoded.ToArray();
            Assert.Same(await store.GetOrCreateAsync(TestContext.Current.CancellationToken), await store.GetOrCreateAsync(TestContext.Current.CancellationToken));
        }

        using (var store = new FileDeviceKeyStore(path))
        {
            Assert.Equal(first, (await store.GetOrCreateAsync(TestContext.Current.CancellationToken)).PublicKey.Encoded.ToArray());
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
            using var store = new FileDeviceKeyStore(path);
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => store.GetOrCreateAsync(TestContext.Current.CancellationToken).AsTask());
            Assert.Contains("chmod 600", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_malformed_device_key_file_is_refused()
    {
        using var directory = new TempDirectory();
        string path = directory.Sub("device.key");
        OwnerOnlyFile.Write(path, "modelseal-device-key-v1\nprivate-key: 1234\n");
        using var store = new FileDeviceKeyStore(path);
        await Assert.ThrowsAsync<InvalidOperationException>(() => store.GetOrCreateAsync(TestContext.Current.CancellationToken).AsTask());
    }

    [Fact]
    public async Task The_file_lease_cache_round_trips_and_removes()
    {
        using var directory = new TempDirectory();
        var cache = new FileLeaseCache(directory.Sub("leases"));
        var lease = new ModelLease("m/../x", "1", "k1", "subject", "enc", "sealed", DateTimeOffset.FromUnixTimeSeconds(2_000_000_000));
        Assert.Null(await cache.GetAsync("m/../x", "1", "k1", TestContext.Current.CancellationToken));
        await cache.StoreAsync(lease, TestContext.Current.CancellationToken);
        Assert.Equal(lease, await cache.GetAsync("m/../x", "1", "k1", TestContext.Current.CancellationToken));
        Assert.Null(await cache.GetAsync("m/../x", "2", "k1", TestContext.Current.CancellationToken));
        string file = Assert.Single(Directory.GetFiles(directory.Sub("leases")));
        Assert.StartsWith(directory.Sub("leases"), file, StringComparison.Ordinal);
        await cache.RemoveAsync("m/../x", "1", "k1", TestContext.Current.CancellationToken);
        Assert.Null(await cache.GetAsync("m/../x", "1", "k1", TestContext.Current.CancellationToken));
    }

    [Fact]
    public void An_access_token_never_prints_the_token_and_its_subject_is_the_sub_claim()
    {
        string payload = System.Buffers.Text.Base64Url.EncodeToString("{\"sub\":\"acme-app\",\"scope\":\"keys\"}"u8);
        string jwt = $"eyJhbGciOiJFUzI1NiJ9.{payload}.c2lnbmF0dXJl";
        Assert.Equal("acme-app", AccessToken.ReadSubject(jwt));
        Assert.Null(AccessToken.ReadSubject("not-a-jwt"));
        var token = new AccessToken(jwt, "acme-app", DateTimeOffset.UnixEpoch);
        Assert.DoesNotContain(jwt, token.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_in_memory_stores_work()
    {
        using var device = new InMemoryDeviceKeyStore();
        IHpkeKeyAgreement key = await device.GetOrCreateAsync(TestContext.Current.CancellationToken);
        Assert.Equal(65, key.PublicKey.Encoded.Length);
        var cache = new InMemoryLeaseCache();
        var lease = new ModelLease("m", "1", "k", "s", "e", "k", DateTimeOffset.UnixEpoch);
        await cache.StoreAsync(lease, TestContext.Current.CancellationToken);
        Assert.Same(lease, await cache.GetAsync("m", "1", "k", TestContext.Current.CancellationToken));
        await cache.RemoveAsync("m", "1", "k", TestContext.Current.CancellationToken);
        Assert.Null(await cache.GetAsync("m", "1", "k", TestContext.Current.CancellationToken));
    }
}
