using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Fuzz;

/// <summary>
/// Harnesses of the device-attestation verifiers (src/ModelSeal.Server/Attestation). Their contract: an input is
/// accepted, or refused with an <see cref="AttestationException"/> whose <see cref="AttestationException.Failure"/> is
/// a defined reason. Any other exception escapes (a crash); so does a refusal with an undefined reason.
/// </summary>
/// <remarks>
/// The trust and the verification times are fixed: Google's hardware attestation roots and the sample status list,
/// Apple's App Attestation root, and the contexts (pinned time, recorded challenge, key id, App ID) of the real samples
/// in tests/attestation, read once from their expected.json files. The first byte of an input selects one context
/// (modulo their number, in file-name order), so that each real sample's seed verifies at its own pinned time: a
/// fixed "now" would leave every sample but one outside its short-lived certificates (RKP intermediates live weeks,
/// App Attest leaves three days) and the fuzzer would never get past the validity check.
/// </remarks>
internal static class AttestationTargets
{
    private static readonly Lazy<AndroidContexts> Android = new(LoadAndroid);
    private static readonly Lazy<AppleContexts> Apple = new(LoadApple);

    /// <summary>
    /// An Android chain as the input encodes it (see <see cref="SplitChain"/>) through
    /// <see cref="AndroidKeyAttestation.Verify"/> against Google's roots and the sample status list at the selected
    /// pinned time; when it verifies, through <see cref="AndroidAttestationPolicy.Check"/> (the default policy, with the
    /// attestation's own challenge and, for a P-256 leaf, its own key, so that the checks run past those two).
    /// </summary>
    public static void AndroidChain(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        AndroidContexts contexts = Android.Value;
        DateTimeOffset time = contexts.Times[data[0] % contexts.Times.Count];
        Refusable(() =>
        {
            AndroidAttestation attestation = AndroidKeyAttestation.Verify(SplitChain(data.AsSpan(1)), contexts.Trust, time);
            new AndroidAttestationPolicy().Check(attestation, attestation.Description.Challenge, P256Point(attestation.SubjectPublicKeyInfo));
        });
    }

    /// <summary>The key attestation extension's value on its own: <see cref="KeyDescription.Parse"/>, then what the policy reads.</summary>
    public static void KeyDescriptionValue(byte[] data) => Refusable(() =>
    {
        KeyDescription description = KeyDescription.Parse(data);
        _ = description.Enforced.RootOfTrust?.BootState;
        _ = description.HasPurpose(AuthorizationList.PurposeAttestKey);
        _ = (description.SoftwareEnforced.ApplicationId ?? description.HardwareEnforced.ApplicationId)?.PackageNames.Count;
    });

    /// <summary>
    /// An App Attest attestation object (after the selector byte) through <see cref="AppleAppAttest.VerifyAttestation"/>
    /// with the selected sample's clientDataHash, key id and pinned time, the pinned App Attestation root, and a
    /// policy allowing the samples' App IDs (and development keys where the sample is one).
    /// </summary>
    public static void AppleAttestation(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        AppleContexts contexts = Apple.Value;
        AppleAttestationContext context = contexts.Attestations[data[0] % contexts.Attestations.Count];
        Refusable(() => AppleAppAttest.VerifyAttestation(data.AsSpan(1), context.ClientDataHash, context.KeyId, context.Policy, contexts.Root, context.Time));
    }

    /// <summary>
    /// An App Attest assertion object (after the selector byte) through <see cref="AppleAppAttest.VerifyAssertion"/>
    /// with the selected sample's clientDataHash, attested key, App ID and previous counter.
    /// </summary>
    public static void AppleAssertion(byte[] data)
    {
        if (data.Length == 0)
        {
            return;
        }

        AppleContexts contexts = Apple.Value;
        AppleAssertionContext context = contexts.Assertions[data[0] % contexts.Assertions.Count];
        Refusable(() => AppleAppAttest.VerifyAssertion(data.AsSpan(1), context.ClientDataHash, context.PublicKey, context.AppId, context.PreviousCounter));
    }

    /// <summary>
    /// Authenticator data as an attestation's (then its credential public key through
    /// <see cref="AppleAuthenticatorData.CosePoint"/>) and as an assertion's.
    /// </summary>
    public static void AuthenticatorData(byte[] data)
    {
        Refusable(() =>
        {
            AppleAuthenticatorData attested = AppleAuthenticatorData.Parse(data, attested: true);
            _ = AppleAuthenticatorData.CosePoint(attested.CredentialPublicKey!);
        });
        Refusable(() => AppleAuthenticatorData.Parse(data, attested: false));
    }

    /// <summary>
    /// The certificates of an android-chain input (after the selector byte): up to
    /// <see cref="AndroidKeyAttestation.MaxChainLength"/> + 1 pieces (one more than the verifier accepts, so that its
    /// limit is reached), each a 2-byte big-endian length and that many bytes; a length past the end takes what is
    /// left, and bytes after the last piece are ignored.
    /// </summary>
    public static List<byte[]> SplitChain(ReadOnlySpan<byte> data)
    {
        var chain = new List<byte[]>();
        while (data.Length >= 2 && chain.Count <= AndroidKeyAttestation.MaxChainLength)
        {
            int length = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(data), data.Length - 2);
            chain.Add(data.Slice(2, length).ToArray());
            data = data[(2 + length)..];
        }

        return chain;
    }

    /// <summary>The input <see cref="SplitChain"/> reads back as <paramref name="chain"/>, with context <paramref name="selector"/>.</summary>
    public static byte[] JoinChain(byte selector, IEnumerable<byte[]> chain)
    {
        var output = new List<byte> { selector };
        foreach (byte[] certificate in chain)
        {
            output.AddRange([(byte)(certificate.Length >> 8), (byte)certificate.Length]);
            output.AddRange(certificate);
        }

        return [.. output];
    }

    /// <summary>The Android samples' file names in context order (the selector of each sample's seed is its index).</summary>
    public static IReadOnlyList<string> AndroidSampleNames => Android.Value.Names;

    /// <summary>The App Attest attestation samples' file names in context order.</summary>
    public static IReadOnlyList<string> AppleAttestationNames => Apple.Value.Attestations.Select(a => a.File).ToList();

    /// <summary>The App Attest assertion samples' file names in context order.</summary>
    public static IReadOnlyList<string> AppleAssertionNames => Apple.Value.Assertions.Select(a => a.File).ToList();

    /// <summary>A file of the real samples: tests/attestation/<paramref name="platform"/>/<paramref name="file"/>.</summary>
    public static string Sample(string platform, string file) => Fixtures.RepositoryFile("tests", "attestation", platform, file);

    /// <summary>Runs a verifier: success, or a refusal with a defined reason (caught); anything else escapes.</summary>
    private static void Refusable(Action verify)
    {
        try
        {
            verify();
        }
        catch (AttestationException e)
        {
            if (!Enum.IsDefined(e.Failure))
            {
                throw new InvalidOperationException($"An attestation was refused with the undefined reason {(int)e.Failure}.", e);
            }

            Outcome.Caught(e);
        }
    }

    /// <summary>
    /// The last 65 bytes of a SubjectPublicKeyInfo: for an uncompressed P-256 key, its point. Check refuses any other
    /// key type before it compares keys, so what this gives for one does not matter.
    /// </summary>
    private static byte[] P256Point(byte[] subjectPublicKeyInfo) =>
        subjectPublicKeyInfo.Length >= 65 ? subjectPublicKeyInfo[^65..] : new byte[65];

    private static AndroidContexts LoadAndroid()
    {
        using JsonDocument expected = JsonDocument.Parse(File.ReadAllBytes(Sample("android", "expected.json")));
        using JsonDocument status = JsonDocument.Parse(File.ReadAllBytes(Sample("android", "status.json")));
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(Sample("android", "google_roots.pem"));
        List<JsonProperty> chains = [.. expected.RootElement.GetProperty("chains").EnumerateObject().OrderBy(c => c.Name, StringComparer.Ordinal)];
        return new AndroidContexts(
            new AndroidTrust(roots, AndroidTrust.SerialsOf(status.RootElement)),
            [.. chains.Select(c => c.Name)],
            [.. chains.Select(c => Time(c.Value))]);
    }

    private static AppleContexts LoadApple()
    {
        using JsonDocument expected = JsonDocument.Parse(File.ReadAllBytes(Sample("apple", "expected.json")));
        var root = new X509Certificate2Collection();
        root.ImportFromPemFile(Sample("apple", "Apple_App_Attestation_Root_CA.pem"));
        JsonElement attestations = expected.RootElement.GetProperty("attestations");
        var appIds = attestations.EnumerateObject().Select(a => a.Value.GetProperty("appId").GetString()!).ToHashSet(StringComparer.Ordinal);
        List<AppleAttestationContext> attestationContexts = [.. attestations.EnumerateObject().OrderBy(a => a.Name, StringComparer.Ordinal).Select(a => new AppleAttestationContext(
            a.Name,
            Hex(a.Value, "clientDataHashHex"),
            Hex(a.Value, "keyIdHex"),
            new AppleAppAttestPolicy { AppIds = appIds, AllowDevelopment = a.Value.GetProperty("environment").GetString() == "development" },
            Time(a.Value)))];
        List<AppleAssertionContext> assertionContexts = [.. expected.RootElement.GetProperty("assertions").EnumerateObject().OrderBy(a => a.Name, StringComparer.Ordinal).Select(a =>
        {
            JsonElement attested = attestations.GetProperty(a.Value.GetProperty("attestationFile").GetString()!);
            return new AppleAssertionContext(
                a.Name,
                Hex(a.Value, "clientDataHashHex"),
                Convert.FromHexString(attested.GetProperty("credentialPublicKey").GetProperty("uncompressedPointHex").GetString()!),
                a.Value.GetProperty("appId").GetString()!,
                a.Value.GetProperty("previousCounter").GetUInt32());
        })];
        return new AppleContexts(root[0], attestationContexts, assertionContexts);
    }

    private static DateTimeOffset Time(JsonElement sample) =>
        DateTimeOffset.Parse(sample.GetProperty("verificationTime").GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    private static byte[] Hex(JsonElement sample, string name) => Convert.FromHexString(sample.GetProperty(name).GetString()!);

    private sealed record AndroidContexts(AndroidTrust Trust, IReadOnlyList<string> Names, IReadOnlyList<DateTimeOffset> Times);

    private sealed record AppleContexts(X509Certificate2 Root, IReadOnlyList<AppleAttestationContext> Attestations, IReadOnlyList<AppleAssertionContext> Assertions);

    private sealed record AppleAttestationContext(string File, byte[] ClientDataHash, byte[] KeyId, AppleAppAttestPolicy Policy, DateTimeOffset Time);

    private sealed record AppleAssertionContext(string File, byte[] ClientDataHash, byte[] PublicKey, string AppId, uint PreviousCounter);
}
