using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ModelSeal.Server.Attestation;

namespace ModelSeal.Server.Tests.Attestation;

/// <summary>The real attestation samples copied into tests/attestation (SOURCES.md there says where each comes from).</summary>
internal static class AttestationSamples
{
    public static string Android(string file) => Path.Combine(RepoPaths.Root, "tests", "attestation", "android", file);

    public static string Apple(string file) => Path.Combine(RepoPaths.Root, "tests", "attestation", "apple", file);

    /// <summary>Google's five hardware attestation roots (google_roots.pem).</summary>
    public static IReadOnlyList<X509Certificate2> GoogleRoots { get; } = Certificates(Android("google_roots.pem"));

    /// <summary>The serials of the sample status list (status.json).</summary>
    public static IReadOnlyList<string> StatusSerials { get; } =
        AndroidTrust.SerialsOf(JsonDocument.Parse(File.ReadAllBytes(Android("status.json"))).RootElement);

    public static AndroidTrust GoogleTrust { get; } = new(GoogleRoots, StatusSerials);

    /// <summary>Apple's App Attestation Root CA, the pinned root of App Attest's x5c.</summary>
    public static X509Certificate2 AppleRoot { get; } = Certificates(Apple("Apple_App_Attestation_Root_CA.pem"))[0];

    /// <summary>Apple Root CA - G3: signs App Attest receipts, not x5c (a root that is not the pinned one).</summary>
    public static X509Certificate2 AppleRootG3 { get; } = Certificates(Apple("Apple_Root_CA_G3.pem"))[0];

    /// <summary>A PEM chain's certificates as DER, leaf first.</summary>
    public static IReadOnlyList<byte[]> Chain(string file) => [.. Certificates(Android(file)).Select(c => c.RawData)];

    /// <summary>The uncompressed point of a P-256 SubjectPublicKeyInfo.</summary>
    public static byte[] PointOf(byte[] subjectPublicKeyInfo)
    {
        using var key = ECDiffieHellman.Create();
        key.ImportSubjectPublicKeyInfo(subjectPublicKeyInfo, out _);
        ECParameters parameters = key.ExportParameters(false);
        return [0x04, .. parameters.Q.X!, .. parameters.Q.Y!];
    }

    private static List<X509Certificate2> Certificates(string pemFile)
    {
        var collection = new X509Certificate2Collection();
        collection.ImportFromPemFile(pemFile);
        return [.. collection];
    }
}
