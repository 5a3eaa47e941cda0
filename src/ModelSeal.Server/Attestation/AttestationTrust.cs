using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Server.Attestation;

/// <summary>A named attestation policy: what each platform's evidence must show (a null section refuses that platform).</summary>
internal sealed record AttestationPolicy(string Name, AndroidAttestationPolicy? Android, AppleAppAttestPolicy? Apple);

/// <summary>
/// The attestation configuration in force: the pinned roots (Google's and Apple's, built in, unless files are
/// configured), the Android status list (read again by <see cref="ReloadStatusList"/>) and the named policies.
/// Built at start from validated options; a file that cannot be read refuses the start.
/// </summary>
internal sealed class AttestationTrust
{
    private readonly X509Certificate2[] _androidRoots;
    private readonly string? _statusListFile;
    private volatile AndroidTrust _android;

    private AttestationTrust(X509Certificate2[] androidRoots, string? statusListFile, X509Certificate2 appleRoot, IReadOnlyDictionary<string, AttestationPolicy> policies)
    {
        _androidRoots = androidRoots;
        _statusListFile = statusListFile;
        AppleRoot = appleRoot;
        Policies = policies;
        _android = new AndroidTrust(_androidRoots, ReadStatusList(statusListFile));
    }

    /// <summary>The Android roots and status list in force.</summary>
    public AndroidTrust Android => _android;

    /// <summary>The pinned App Attest root.</summary>
    public X509Certificate2 AppleRoot { get; }

    /// <summary>The configured policies by name.</summary>
    public IReadOnlyDictionary<string, AttestationPolicy> Policies { get; }

    /// <summary>Builds the trust from validated options.</summary>
    /// <exception cref="ServerConfigurationException">A roots or status list file cannot be read or parsed.</exception>
    public static AttestationTrust Load(AttestationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        X509Certificate2[] android = Certificates(options.Android.RootsFile, "google_roots.pem", "Attestation:Android:RootsFile");
        X509Certificate2[] apple = Certificates(options.Apple.RootFile, "Apple_App_Attestation_Root_CA.pem", "Attestation:Apple:RootFile");
        var policies = options.Policies.ToDictionary(p => p.Key, p => Policy(p.Key, p.Value), StringComparer.Ordinal);
        return new AttestationTrust(android, options.Android.StatusListFile, apple[0], policies);
    }

    /// <summary>Reads the status list file again (the roots do not change); a bad file keeps the list in force and throws.</summary>
    /// <exception cref="ServerConfigurationException">The file cannot be read or is not a status list.</exception>
    public void ReloadStatusList() => _android = new AndroidTrust(_androidRoots, ReadStatusList(_statusListFile));

    private static AttestationPolicy Policy(string name, AttestationPolicyOptions options) => new(
        name,
        options.Android is { } android
            ? new AndroidAttestationPolicy
            {
                MinimumSecurityLevel = Enum.Parse<AndroidSecurityLevel>(android.MinimumSecurityLevel),
                PackageNames = new HashSet<string>(android.PackageNames, StringComparer.Ordinal),
                SigningCertificateDigests = new HashSet<string>(android.SigningCertificateDigests.Select(d => d.ToLowerInvariant()), StringComparer.Ordinal),
                RequireVerifiedBoot = android.RequireVerifiedBoot,
            }
            : null,
        options.Apple is { } apple
            ? new AppleAppAttestPolicy { AppIds = new HashSet<string>(apple.AppIds, StringComparer.Ordinal), AllowDevelopment = apple.AllowDevelopment, ReassertAfter = apple.ReassertAfter }
            : null);

    private static X509Certificate2[] Certificates(string? file, string resource, string key)
    {
        string pem;
        if (file is null)
        {
            using Stream stream = typeof(AttestationTrust).Assembly.GetManifestResourceStream("ModelSeal.Server.Attestation." + resource)
                ?? throw new InvalidOperationException($"The built-in attestation root {resource} is missing from the server assembly.");
            using var reader = new StreamReader(stream);
            pem = reader.ReadToEnd();
        }
        else
        {
            try
            {
                pem = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ServerConfigurationException($"{key} '{file}' could not be read ({e.GetType().Name}); give a readable PEM file.", e);
            }
        }

        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPem(pem);
        }
        catch (CryptographicException e)
        {
            throw new ServerConfigurationException($"{key} '{file}' is not a PEM file of certificates ({e.Message}).", e);
        }

        return collection.Count > 0 ? [.. collection] : throw new ServerConfigurationException($"{key} '{file}' holds no certificate; give a PEM file with at least one.");
    }

    private static IReadOnlyList<string> ReadStatusList(string? file)
    {
        if (file is null)
        {
            return [];
        }

        try
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(file));
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("entries", out _))
            {
                throw new ServerConfigurationException($"Attestation:Android:StatusListFile '{file}' has no \"entries\" object; it must be the document of https://android.googleapis.com/attestation/status.");
            }

            return AndroidTrust.SerialsOf(document.RootElement);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            string why = e is JsonException json ? $"is not JSON (line {(json.LineNumber ?? 0) + 1})" : "could not be read";
            throw new ServerConfigurationException($"Attestation:Android:StatusListFile '{file}' {why}; fetch it again from https://android.googleapis.com/attestation/status.", e);
        }
    }
}
