using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Client.Pkcs11.Tests;

/// <summary>
/// Issue 15 end to end: the real client (DI, the device key in the PKCS#11 token) against the real key server on
/// 127.0.0.1, whose licence has an attestation policy pinning the TEST-ONLY CA's root (<see cref="TestAttestationCa"/>).
/// The token's key never leaves it: only its public point is given to the test CA. A release with the CA's chain over
/// the server's challenge succeeds; one without evidence, or with a mutated chain, is refused with its audited reason
/// and registers nothing. (The full mutation matrix is tested at the server level in AttestationReleaseTests.)
/// </summary>
public sealed class AttestedReleaseTests : IDisposable
{
    private const string Policy = "store-apps";
    private readonly TestAttestationCa _ca = new(DateTimeOffset.UtcNow);
    private readonly TestAttestationCa _unpinnedCa = new(DateTimeOffset.UtcNow);
    private readonly TempDirectory _directory = new();

    public void Dispose()
    {
        _ca.Dispose();
        _unpinnedCa.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task A_release_attested_by_the_test_CA_over_the_token_key_opens_the_model_and_later_ones_and_the_lease_need_no_evidence()
    {
        CancellationToken cancel = TestContext.Current.CancellationToken;
        Pkcs11DeviceKeyOptions deviceKey = TestToken.Options();
        await using TestKeyServer server = await StartAsync(cancel);
        byte[] original = await File.ReadAllBytesAsync(RepoPaths.SampleModel, cancel);
        PublishedModel model = await server.PublishAsync("classifier", original, cancel);
        TestLicence licence = await AttestedLicenceAsync(server, cancel);
        try
        {
            HpkePublicKey devicePublicKey;
            await using (ServiceProvider first = App(server, licence, deviceKey, _directory.Sub("leases"), Attestation(ca => ca.Chain)))
            {
                devicePublicKey = (await first.GetRequiredService<IDeviceKeyStore>().GetOrCreateAsync(cancel)).PublicKey;
                var attestation = (TestOnlyCaAttestation)first.GetRequiredService<IDeviceAttestation>();
                using (ModelKey key = await first.GetRequiredService<IModelKeySource>().GetKeyAsync(model.Header, cancel))
                {
                    using DecryptedModel opened = await SealedModel.DecryptAsync(new MemoryStream(model.Sealed), key, cancellationToken: cancel);
                    Assert.True(opened.Span.SequenceEqual(original));
                }

                // Evidence is sent with the first release of the process only.
                using (ModelKey again = await first.GetRequiredService<IModelKeySource>().GetKeyAsync(model.Header, cancel))
                {
                    Assert.Equal(model.KeyId, again.KeyId);
                }

                Assert.Equal(1, attestation.Calls);
            }

            Assert.Equal([devicePublicKey.Thumbprint], await KeyServerTests.DevicesAsync(server, licence, cancel));
            JsonElement released = await LastAuditAsync(server, licence, "key.released", cancel);
            Assert.Equal(devicePublicKey.Thumbprint, released.GetProperty("device").GetString());
            Assert.Equal(model.KeyId, released.GetProperty("keyId").GetString());

            // A new process (a new store on the same token, no lease of its own): attests again, is released, is the
            // same device.
            await using (ServiceProvider restarted = App(server, licence, deviceKey, _directory.Sub("leases-after-restart"), Attestation(ca => ca.Chain)))
            {
                using ModelKey key = await restarted.GetRequiredService<IModelKeySource>().GetKeyAsync(model.Header, cancel);
                Assert.Equal(model.KeyId, key.KeyId);
                Assert.Equal(1, ((TestOnlyCaAttestation)restarted.GetRequiredService<IDeviceAttestation>()).Calls);
            }

            Assert.Equal([devicePublicKey.Thumbprint], await KeyServerTests.DevicesAsync(server, licence, cancel));

            // Offline: the server is gone; the lease opens through the token's key agreement.
            await server.StopAsync();
            await using (ServiceProvider offline = App(server, licence, deviceKey, _directory.Sub("leases"), Attestation(ca => ca.Chain)))
            {
                using ModelKey key = await offline.GetRequiredService<IModelKeySource>().GetKeyAsync(model.Header, cancel);
                using DecryptedModel opened = await SealedModel.DecryptAsync(new MemoryStream(model.Sealed), key, cancellationToken: cancel);
                Assert.True(opened.Span.SequenceEqual(original));
            }
        }
        finally
        {
            await DestroyAsync(deviceKey);
        }
    }

    public static TheoryData<string, string> Refusals() => new()
    {
        { "none", "evidence-missing" },
        { "flip-leaf", "signature-invalid" },
        { "flip-intermediate", "signature-invalid" },
        { "unpinned-root", "untrusted-root" },
        { "other-key", "key-mismatch" },
        { "package", "package-not-allowed" },
        { "software", "security-level" },
        { "wrong-challenge", "challenge-mismatch" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Without_evidence_or_with_a_mutated_chain_the_client_is_refused_with_the_audited_reason_and_nothing_is_registered(string mutation, string reason)
    {
        CancellationToken cancel = TestContext.Current.CancellationToken;
        Pkcs11DeviceKeyOptions deviceKey = TestToken.Options();
        await using TestKeyServer server = await StartAsync(cancel);
        PublishedModel model = await server.PublishAsync("classifier", await File.ReadAllBytesAsync(RepoPaths.SampleModel, cancel), cancel);
        TestLicence licence = await AttestedLicenceAsync(server, cancel);
        Func<IServiceProvider, IDeviceAttestation>? attestation = mutation switch
        {
            "none" => null,
            "flip-leaf" => Attestation(ca => (key, leaf) => Flip(ca.Chain(key, leaf), 0)),
            "flip-intermediate" => Attestation(ca => (key, leaf) => Flip(ca.Chain(key, leaf), 1)),
            "unpinned-root" => Attestation(_ => _unpinnedCa.Chain),
            "other-key" => Attestation(ca => (_, leaf) =>
            {
                using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
                return ca.Chain(other, leaf);
            }),
            "package" => Attestation(ca => (key, leaf) => ca.Chain(key, leaf with { PackageName = "com.example.repackaged" })),
            "software" => Attestation(ca => (key, leaf) => ca.Chain(key, leaf with { Level = LeafDescription.Software })),
            "wrong-challenge" => Attestation(ca => (key, leaf) => ca.Chain(key, leaf with { Challenge = RandomNumberGenerator.GetBytes(32) })),
            _ => throw new ArgumentOutOfRangeException(nameof(mutation), mutation, null),
        };

        try
        {
            await using ServiceProvider app = App(server, licence, deviceKey, _directory.Sub("leases"), attestation);
            ModelKeyUnavailableException refused = await Assert.ThrowsAsync<ModelKeyUnavailableException>(
                async () => (await app.GetRequiredService<IModelKeySource>().GetKeyAsync(model.Header, cancel)).Dispose());
            Assert.Equal(ModelKeyUnavailableReason.AttestationRejected, refused.Reason);
            if (attestation is not null)
            {
                Assert.Equal(1, ((TestOnlyCaAttestation)app.GetRequiredService<IDeviceAttestation>()).Calls);
            }

            JsonElement audit = await LastAuditAsync(server, licence, "key.refused", cancel);
            Assert.Equal("attestation-rejected", audit.GetProperty("outcome").GetString());
            Assert.Equal(reason, audit.GetProperty("attributes").GetProperty("attestation").GetString());
            Assert.Empty(await KeyServerTests.DevicesAsync(server, licence, cancel));
            Assert.Empty(Directory.Exists(_directory.Sub("leases")) ? Directory.GetFiles(_directory.Sub("leases"), "*.lease.json") : []);
        }
        finally
        {
            await DestroyAsync(deviceKey);
        }
    }

    /// <summary>A key server pinning the test CA's root, with the policy <c>store-apps</c> (Android, the CA's package and
    /// digest), and refusals audited without coalescing (docs/protocol.md section 4.2) so a test reads them at once.</summary>
    private async Task<TestKeyServer> StartAsync(CancellationToken cancellationToken)
    {
        string roots = _directory.Sub("android-roots.pem");
        await File.WriteAllTextAsync(roots, _ca.RootPem(), cancellationToken);
        string statusList = _directory.Sub("status.json");
        await File.WriteAllTextAsync(statusList, """{"entries": {}}""", cancellationToken);
        return await TestKeyServer.StartAsync(
            o =>
            {
                o.Audit.RefusalWindow = TimeSpan.Zero; // one audit record per refusal, written before the answer
                o.Attestation.ReverifyInterval = TimeSpan.Zero;
                o.Attestation.Android.RootsFile = roots;
                o.Attestation.Android.StatusListFile = statusList;
                o.Attestation.Policies[Policy] = new AttestationPolicyOptions
                {
                    Android = new AndroidPolicyOptions { PackageNames = [LeafDescription.Package], SigningCertificateDigests = [LeafDescription.Digest] },
                };
            },
            cancellationToken: cancellationToken);
    }

    /// <summary>A licence for <c>classifier</c> (one device) that gains the attestation policy.</summary>
    private static async Task<TestLicence> AttestedLicenceAsync(TestKeyServer server, CancellationToken cancellationToken)
    {
        TestLicence licence = await server.CreateLicenceAsync("acme-app", ["classifier"], maxDevices: 1, cancellationToken: cancellationToken);
        HttpClient admin = await server.AdminAsync(cancellationToken);
        using HttpResponseMessage patched = await admin.PatchAsJsonAsync($"/v1/admin/licences/{Uri.EscapeDataString(licence.LicenceId)}", new { attestationPolicy = Policy }, cancellationToken);
        patched.EnsureSuccessStatusCode();
        return licence;
    }

    /// <summary>The app: the client with the token's device key and, when given, the attestation (also KeyServerTests').</summary>
    internal static ServiceProvider App(TestKeyServer server, TestLicence licence, Pkcs11DeviceKeyOptions deviceKey, string leases, Func<IServiceProvider, IDeviceAttestation>? attestation)
    {
        IServiceCollection services = new ServiceCollection()
            .AddModelSeal(o =>
            {
                o.ServerUrl = server.Url;
                o.LicenceId = licence.LicenceId;
                o.CredentialFile = licence.CredentialFile;
                o.LeaseCacheDirectory = leases;
            })
            .AddModelSealPkcs11DeviceKey(o =>
            {
                o.ModulePath = deviceKey.ModulePath;
                o.TokenLabel = deviceKey.TokenLabel;
                o.KeyLabel = deviceKey.KeyLabel;
                o.PinEnvironmentVariable = deviceKey.PinEnvironmentVariable;
            });
        if (attestation is not null)
        {
            services.AddSingleton(attestation);
        }

        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    /// <summary>A factory of the test-only attestation whose chain <paramref name="chain"/> makes from the test CA.</summary>
    private Func<IServiceProvider, IDeviceAttestation> Attestation(Func<TestAttestationCa, Func<ECDiffieHellman, LeafDescription, List<byte[]>>> chain) =>
        sp => new TestOnlyCaAttestation(sp.GetRequiredService<IDeviceKeyStore>(), chain(_ca));

    private static List<byte[]> Flip(List<byte[]> chain, int index)
    {
        chain[index][^1] ^= 0x01;
        return chain;
    }

    private static async Task DestroyAsync(Pkcs11DeviceKeyOptions deviceKey)
    {
        using var cleanup = new Pkcs11DeviceKeyStore(deviceKey);
        TestToken.Destroy(await TestToken.SessionsAsync(cleanup), deviceKey.KeyLabel);
    }

    /// <summary>The licence's last audit record of <paramref name="auditEvent"/>.</summary>
    private static async Task<JsonElement> LastAuditAsync(TestKeyServer server, TestLicence licence, string auditEvent, CancellationToken cancellationToken)
    {
        HttpClient admin = await server.AdminAsync(cancellationToken);
        JsonElement page = await admin.GetFromJsonAsync<JsonElement>($"/v1/admin/audit?after=0&limit=500&licenceId={Uri.EscapeDataString(licence.LicenceId)}&event={auditEvent}", cancellationToken);
        return page.GetProperty("items").EnumerateArray().Last();
    }

    /// <summary>
    /// TEST ONLY — an <see cref="IDeviceAttestation"/> whose evidence is a <see cref="TestAttestationCa"/> chain over the
    /// PKCS#11 device key's public point (the private key stays in the token) and the server's challenge, as
    /// <c>chain</c> makes it. A real app uses its platform's attestation (docs/client.md "Attestation").
    /// </summary>
    private sealed class TestOnlyCaAttestation(IDeviceKeyStore store, Func<ECDiffieHellman, LeafDescription, List<byte[]>> chain) : IDeviceAttestation
    {
        public int Calls { get; private set; }

        public async ValueTask<DeviceAttestationEvidence> AttestAsync(ReadOnlyMemory<byte> challenge, CancellationToken cancellationToken = default)
        {
            Calls++;
            byte[] point = (await store.GetOrCreateAsync(cancellationToken)).PublicKey.Encoded.ToArray();
            Assert.Equal(65, point.Length);
            using var publicKey = ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = point[1..33], Y = point[33..] } });
            return DeviceAttestationEvidence.AndroidKeyChain(chain(publicKey, new LeafDescription { Challenge = challenge.ToArray() }));
        }
    }
}
