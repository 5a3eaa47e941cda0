namespace ModelSeal.Server.Configuration;

/// <summary>
/// Device attestation as a release policy (docs/protocol.md section 2.6; docs/deploy.md "Configuration reference"),
/// bound from the <c>Attestation</c> section. A licence (<c>attestationPolicy</c>) or an entitlement rule
/// (<c>AttestationPolicy</c>) names one of <see cref="Policies"/>; grants without a policy are not affected.
/// </summary>
public sealed class AttestationOptions
{
    /// <summary>How long a challenge from <c>POST /v1/attestation/challenges</c> may be used (<c>Attestation:ChallengeLifetime</c>, default 5 minutes, 30 seconds to 1 hour).</summary>
    public TimeSpan ChallengeLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How often every accepted Android attestation is verified again against the status list file and its policy
    /// (<c>Attestation:ReverifyInterval</c>, default 1 day, at least 1 minute; 0 turns it off). <c>POST
    /// /v1/admin/attestations/reverify</c> does the same at once.
    /// </summary>
    public TimeSpan ReverifyInterval { get; set; } = TimeSpan.FromDays(1);

    /// <summary>What Android Key Attestation chains are checked against (<c>Attestation:Android</c>).</summary>
    public AndroidAttestationTrustOptions Android { get; set; } = new();

    /// <summary>What App Attest evidence is checked against (<c>Attestation:Apple</c>).</summary>
    public AppleAttestationTrustOptions Apple { get; set; } = new();

    /// <summary>The named policies (<c>Attestation:Policies:NAME</c>); names are 1 to 64 of <c>A–Z a–z 0–9 . - _</c>.</summary>
    public IDictionary<string, AttestationPolicyOptions> Policies { get; set; } = new Dictionary<string, AttestationPolicyOptions>(StringComparer.Ordinal);

    internal AttestationOptions Copy()
    {
        var copy = (AttestationOptions)MemberwiseClone();
        copy.Android = Android is null ? null! : Android.Copy();
        copy.Apple = Apple is null ? null! : Apple.Copy();
        copy.Policies = Policies is null ? null! : Policies.ToDictionary(p => p.Key, p => p.Value?.Copy()!, StringComparer.Ordinal);
        return copy;
    }
}

/// <summary>The trust anchors of Android Key Attestation (<c>Attestation:Android</c>).</summary>
public sealed class AndroidAttestationTrustOptions
{
    /// <summary>A PEM file of pinned root certificates (<c>Attestation:Android:RootsFile</c>); null: Google's hardware attestation roots, built in.</summary>
    public string? RootsFile { get; set; }

    /// <summary>
    /// Google's certificate status list as a JSON file (<c>Attestation:Android:StatusListFile</c>, the document of
    /// <c>https://android.googleapis.com/attestation/status</c>): every serial in it is refused. Read at start and at
    /// each re-verification; null: no status list.
    /// </summary>
    public string? StatusListFile { get; set; }

    internal AndroidAttestationTrustOptions Copy() => (AndroidAttestationTrustOptions)MemberwiseClone();
}

/// <summary>The trust anchor of App Attest (<c>Attestation:Apple</c>).</summary>
public sealed class AppleAttestationTrustOptions
{
    /// <summary>A PEM file with the pinned root (<c>Attestation:Apple:RootFile</c>); null: the Apple App Attestation Root CA, built in.</summary>
    public string? RootFile { get; set; }

    internal AppleAttestationTrustOptions Copy() => (AppleAttestationTrustOptions)MemberwiseClone();
}

/// <summary>One named attestation policy: what each platform's evidence must show. A policy with one section accepts only that platform.</summary>
public sealed class AttestationPolicyOptions
{
    /// <summary>Android Key Attestation's requirements (<c>Attestation:Policies:NAME:Android</c>); null: Android evidence is refused.</summary>
    public AndroidPolicyOptions? Android { get; set; }

    /// <summary>App Attest's requirements (<c>Attestation:Policies:NAME:Apple</c>); null: Apple evidence is refused.</summary>
    public ApplePolicyOptions? Apple { get; set; }

    internal AttestationPolicyOptions Copy()
    {
        var copy = (AttestationPolicyOptions)MemberwiseClone();
        copy.Android = Android?.Copy();
        copy.Apple = Apple?.Copy();
        return copy;
    }
}

/// <summary>An Android section of an attestation policy.</summary>
public sealed class AndroidPolicyOptions
{
    /// <summary><c>TrustedEnvironment</c> (default: TEE or StrongBox) or <c>StrongBox</c>.</summary>
    public string MinimumSecurityLevel { get; set; } = "TrustedEnvironment";

    /// <summary>The app's package names (required, at least one).</summary>
    public IList<string> PackageNames { get; set; } = [];

    /// <summary>SHA-256 digests of the app's signing certificates, 64 hex digits each (required, at least one).</summary>
    public IList<string> SigningCertificateDigests { get; set; } = [];

    /// <summary>Whether the bootloader must be locked and the verified boot state VERIFIED (default true).</summary>
    public bool RequireVerifiedBoot { get; set; } = true;

    internal AndroidPolicyOptions Copy()
    {
        var copy = (AndroidPolicyOptions)MemberwiseClone();
        copy.PackageNames = PackageNames is null ? null! : [.. PackageNames];
        copy.SigningCertificateDigests = SigningCertificateDigests is null ? null! : [.. SigningCertificateDigests];
        return copy;
    }
}

/// <summary>An Apple section of an attestation policy.</summary>
public sealed class ApplePolicyOptions
{
    /// <summary>The App IDs (<c>TEAMID.bundle.id</c>) whose keys are accepted (required, at least one).</summary>
    public IList<string> AppIds { get; set; } = [];

    /// <summary>Whether keys of the development environment are accepted too (default false: production only).</summary>
    public bool AllowDevelopment { get; set; }

    /// <summary>When set, a release after this long since the key's last verification must carry a fresh assertion.</summary>
    public TimeSpan? ReassertAfter { get; set; }

    internal ApplePolicyOptions Copy()
    {
        var copy = (ApplePolicyOptions)MemberwiseClone();
        copy.AppIds = AppIds is null ? null! : [.. AppIds];
        return copy;
    }
}
