using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>
/// Every real App Attest sample of tests/attestation/apple gets the verdict its expected.json gives, at its pinned
/// time, with its recorded challenge, and yields the facts that file records; the two real assertions verify with
/// their recorded counters.
/// </summary>
public sealed class AppleSampleTests
{
    private static readonly JsonElement Expected = JsonDocument.Parse(File.ReadAllBytes(AttestationSamples.Apple("expected.json"))).RootElement;

    /// <summary>
    /// The challenge each sample's app was given and how it became clientDataHash: Apple's guide samples passed the
    /// challenge's bytes as clientDataHash unhashed (SOURCES.md fact 10); the others SHA-256 of the client data.
    /// </summary>
    private static readonly Dictionary<string, (string Challenge, bool Hashed)> Challenges = new(StringComparer.Ordinal)
    {
        ["apple_guide_2024_attestation.cbor"] = ("test_server_challenge", false),
        ["apple_guide_2026_attestation.cbor"] = ("example_server_challenge", false),
        ["webauthn4j_kayak_attestation.cbor"] = ("1234567890abcdefgh", true),
        ["veehaitch_ios14_4_attestation.cbor"] = ("wurzelpfropf", true),
    };

    public static TheoryData<string> Attestations() => [.. Expected.GetProperty("attestations").EnumerateObject().Select(a => a.Name)];

    public static TheoryData<string> Assertions() => [.. Expected.GetProperty("assertions").EnumerateObject().Select(a => a.Name)];

    [Theory]
    [MemberData(nameof(Attestations))]
    public void A_real_attestation_gets_its_expected_verdict_at_its_pinned_time(string file)
    {
        JsonElement expected = Expected.GetProperty("attestations").GetProperty(file);
        Assert.True(expected.GetProperty("allChecksPass").GetBoolean(), file);
        byte[] clientDataHash = ClientDataHash(file);
        Assert.Equal(expected.GetProperty("clientDataHashHex").GetString(), Convert.ToHexStringLower(clientDataHash));
        bool development = expected.GetProperty("environment").GetString() == "development";

        AppleAttestation attestation = Verify(file, new AppleAppAttestPolicy { AppIds = AppIds(expected), AllowDevelopment = development });

        Assert.Equal(expected.GetProperty("keyIdHex").GetString(), Convert.ToHexStringLower(attestation.KeyId));
        Assert.Equal(expected.GetProperty("credentialPublicKey").GetProperty("uncompressedPointHex").GetString(), Convert.ToHexStringLower(attestation.PublicKey));
        Assert.Equal(expected.GetProperty("appId").GetString(), attestation.AppId);
        Assert.Equal(development ? AppAttestEnvironment.Development : AppAttestEnvironment.Production, attestation.Environment);
        Assert.Equal(0u, attestation.Counter);
        Assert.Equal(expected.GetProperty("receipt").GetProperty("lengthBytes").GetInt32(), attestation.Receipt.Length);
    }

    [Fact]
    public void The_2026_guide_sample_has_authdata_extensions_without_the_ed_flag_and_is_accepted()
    {
        JsonElement expected = Expected.GetProperty("attestations").GetProperty("apple_guide_2026_attestation.cbor").GetProperty("authData");
        Assert.True(expected.GetProperty("extensionsPresentButEDFlagClear").GetBoolean());
        byte[] authData = AppleMutationTests.Decode(File.ReadAllBytes(AttestationSamples.Apple("apple_guide_2026_attestation.cbor"))).AuthData;
        AppleAuthenticatorData parsed = AppleAuthenticatorData.Parse(authData, attested: true);
        Assert.Equal(0, parsed.Flags & AppleAuthenticatorData.ExtensionData);
        Assert.Equal(expected.GetProperty("lengthBytes").GetInt32(), authData.Length);
        Assert.True(authData.Length > 37 + 16 + 2 + 32 + parsed.CredentialPublicKey!.Length);
    }

    [Theory]
    [MemberData(nameof(Assertions))]
    public void A_real_assertion_verifies_with_its_recorded_counter(string file)
    {
        JsonElement expected = Expected.GetProperty("assertions").GetProperty(file);
        string attestationFile = expected.GetProperty("attestationFile").GetString()!;
        JsonElement attested = Expected.GetProperty("attestations").GetProperty(attestationFile);
        AppleAttestation attestation = Verify(attestationFile, new AppleAppAttestPolicy { AppIds = AppIds(attested), AllowDevelopment = true });

        byte[] clientDataHash = SHA256.HashData(Encoding.UTF8.GetBytes(expected.GetProperty("clientDataUtf8").GetString()!));
        Assert.Equal(expected.GetProperty("clientDataHashHex").GetString(), Convert.ToHexStringLower(clientDataHash));
        AppleAssertion assertion = AppleAppAttest.VerifyAssertion(
            File.ReadAllBytes(AttestationSamples.Apple(file)), clientDataHash, attestation.PublicKey, attestation.AppId, expected.GetProperty("previousCounter").GetUInt32());
        Assert.Equal(expected.GetProperty("counter").GetUInt32(), assertion.Counter);
    }

    /// <summary>A real sample verified at its pinned time with its recorded challenge and key id.</summary>
    internal static AppleAttestation Verify(string file, AppleAppAttestPolicy policy) =>
        AppleAppAttest.VerifyAttestation(File.ReadAllBytes(AttestationSamples.Apple(file)), ClientDataHash(file), KeyId(file), policy, AttestationSamples.AppleRoot, PinnedTime(file));

    internal static byte[] ClientDataHash(string file)
    {
        (string challenge, bool hashed) = Challenges[file];
        byte[] bytes = Encoding.ASCII.GetBytes(challenge);
        return hashed ? SHA256.HashData(bytes) : bytes;
    }

    internal static byte[] KeyId(string file) => Convert.FromBase64String(Attestation(file).GetProperty("keyIdBase64").GetString()!);

    internal static string AppId(string file) => Attestation(file).GetProperty("appId").GetString()!;

    internal static DateTimeOffset PinnedTime(string file) =>
        DateTimeOffset.Parse(Attestation(file).GetProperty("verificationTime").GetString()!, CultureInfo.InvariantCulture);

    private static JsonElement Attestation(string file) => Expected.GetProperty("attestations").GetProperty(file);

    private static HashSet<string> AppIds(JsonElement expected) => new([expected.GetProperty("appId").GetString()!], StringComparer.Ordinal);
}
