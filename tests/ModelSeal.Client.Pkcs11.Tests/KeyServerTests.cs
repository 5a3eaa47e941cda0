using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;

namespace ModelSeal.Client.Pkcs11.Tests;

/// <summary>
/// The client with its device key in the token, against the real key server on 127.0.0.1: release, model opening,
/// the offline lease, and a restarted app (a new store, as a new process sees the token) that is the same device.
/// </summary>
public sealed class KeyServerTests
{
    [Fact]
    public async Task Releases_leases_and_model_opening_work_through_the_token_and_a_restart_is_the_same_device()
    {
        Pkcs11DeviceKeyOptions deviceKey = TestToken.Options();
        CancellationToken cancel = TestContext.Current.CancellationToken;
        await using TestKeyServer server = await TestKeyServer.StartAsync(cancellationToken: cancel);
        byte[] original = await File.ReadAllBytesAsync(RepoPaths.SampleModel, cancel);
        PublishedModel model = await server.PublishAsync("classifier", original, cancel);
        TestLicence licence = await server.CreateLicenceAsync("acme-app", ["classifier"], maxDevices: 1, cancellationToken: cancel);
        using var client = new TempDirectory();

        ServiceProvider App(string leases) => AttestedReleaseTests.App(server, licence, deviceKey, leases, attestation: null);

        HpkePublicKey devicePublicKey;
        try
        {
            await using (ServiceProvider first = App(client.Sub("leases")))
            {
                IDeviceKeyStore store = first.GetRequiredService<IDeviceKeyStore>();
                Assert.IsType<Pkcs11DeviceKeyStore>(store);
                devicePublicKey = (await store.GetOrCreateAsync(cancel)).PublicKey;

                using (ModelKey key = await first.GetRequiredService<IModelKeySource>().GetKeyAsync(model.Header, cancel))
                {
                    using DecryptedModel opened = await SealedModel.DecryptAsync(new MemoryStream(model.Sealed), key, cancellationToken: cancel);
                    Assert.True(opened.Span.SequenceEqual(original));
                }

                Assert.Single(Directory.GetFiles(client.Sub("leases"), "*.lease.json"));
            }

            // Registered under the token key's thumbprint, once.
            Assert.Equal([devicePublicKey.Thumbprint], await DevicesAsync(server, licence, cancel));

            // A restarted app (a new store) with no lease of its own: online, the same key, the same device, no second
            // device slot (the licence allows one).
            await using (ServiceProvider restarted = App(client.Sub("leases-after-restart")))
            {
                Assert.Equal(devicePublicKey, (await restarted.GetRequiredService<IDeviceKeyStore>().GetOrCreateAsync(cancel)).PublicKey);
                using ModelKey key = await restarted.GetRequiredService<IModelKeySource>().GetKeyAsync(model.Header, cancel);
                Assert.Equal(model.KeyId, key.KeyId);
            }

            Assert.Equal([devicePublicKey.Thumbprint], await DevicesAsync(server, licence, cancel));

            // Offline: the server is gone, and the cached lease opens through the token's key agreement in a new app.
            await server.StopAsync();
            await using (ServiceProvider offline = App(client.Sub("leases")))
            {
                using ModelKey key = await offline.GetRequiredService<IModelKeySource>().GetKeyAsync(model.Header, cancel);
                using DecryptedModel opened = await SealedModel.DecryptAsync(new MemoryStream(model.Sealed), key, cancellationToken: cancel);
                Assert.True(opened.Span.SequenceEqual(original));
            }
        }
        finally
        {
            using var cleanup = new Pkcs11DeviceKeyStore(deviceKey);
            TestToken.Destroy(await TestToken.SessionsAsync(cleanup), deviceKey.KeyLabel);
        }
    }

    /// <summary>The thumbprints of the licence's registered devices (admin API).</summary>
    internal static async Task<string[]> DevicesAsync(TestKeyServer server, TestLicence licence, CancellationToken cancellationToken)
    {
        HttpClient admin = await server.AdminAsync(cancellationToken);
        JsonElement devices = await admin.GetFromJsonAsync<JsonElement>($"/v1/admin/licences/{Uri.EscapeDataString(licence.LicenceId)}/devices", cancellationToken);
        return [.. devices.GetProperty("items").EnumerateArray().Select(d => d.GetProperty("thumbprint").GetString()!)];
    }
}
