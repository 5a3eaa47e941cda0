using ModelSeal.Server.Text;

namespace ModelSeal.Server.Attestation;

/// <summary>
/// Why attestation evidence was refused. The client only ever hears <c>403 attestation-rejected</c>; the reason, as
/// its code (<see cref="AttestationFailures.Code"/>), goes to the audit record as the attribute <c>attestation</c> (docs/protocol.md section 2.6).
/// </summary>
internal enum AttestationFailure
{
    /// <summary>Not certificates in DER, too few or too many of them, or (App Attest) not a valid certificate path.</summary>
    ChainMalformed,

    /// <summary>The last certificate's key is not a pinned root key.</summary>
    UntrustedRoot,

    /// <summary>A certificate's signature does not verify under the next certificate's key.</summary>
    SignatureInvalid,

    /// <summary>A signature algorithm this verifier does not check.</summary>
    SignatureAlgorithmUnsupported,

    /// <summary>A certificate is outside its validity period at the verification time.</summary>
    CertificateExpired,

    /// <summary>A certificate's serial is revoked or suspended in the status list.</summary>
    CertificateRevoked,

    /// <summary>A certificate after the leaf carries an attestation but is not an ATTEST_KEY key.</summary>
    AttestKeyRule,

    /// <summary>The leaf has no attestation extension.</summary>
    ExtensionMissing,

    /// <summary>The attestation extension is not strict DER of the schema.</summary>
    ExtensionMalformed,

    /// <summary>The attested key is not an EC P-256 key.</summary>
    UnsupportedKeyType,

    /// <summary>The attestation's challenge is not the one the server issued.</summary>
    ChallengeMismatch,

    /// <summary>The attested key is not the device key the model key would be sealed to.</summary>
    KeyMismatch,

    /// <summary>The key is in a weaker place than the policy requires (software, or TEE where StrongBox is required).</summary>
    SecurityLevel,

    /// <summary>The key was imported, so its private half existed outside the secure hardware.</summary>
    KeyImported,

    /// <summary>The key may not be used for key agreement.</summary>
    Purpose,

    /// <summary>The app's package name is not on the allow-list.</summary>
    PackageNotAllowed,

    /// <summary>The app's signing certificate digest is not on the allow-list.</summary>
    SigningCertificateNotAllowed,

    /// <summary>The device's bootloader is unlocked.</summary>
    DeviceUnlocked,

    /// <summary>The verified boot state is not VERIFIED.</summary>
    BootNotVerified,

    /// <summary>An App Attest object that is not strict CBOR of its schema: truncated, trailing bytes, missing or unknown members, wrong types, too large.</summary>
    CborMalformed,

    /// <summary>An attestation object whose <c>fmt</c> is not <c>apple-appattest</c>.</summary>
    FormatUnsupported,

    /// <summary>App Attest authenticator data that is too short, lacks attested credential data, or whose lengths do not add up.</summary>
    AuthenticatorDataMalformed,

    /// <summary>The App Attest key id (SHA-256 of the leaf's public key) is not the credential id in authData, the key the client claims, or the key in authData.</summary>
    KeyIdMismatch,

    /// <summary>The App ID the evidence was made for (its rpIdHash) is not on the allow-list, or not the attested App ID.</summary>
    AppIdNotAllowed,

    /// <summary>An App Attest attestation whose counter is not 0.</summary>
    CounterNotZero,

    /// <summary>An App Attest key from the development environment (or an unknown one) where the policy allows only production.</summary>
    EnvironmentNotAllowed,

    /// <summary>An App Attest assertion whose signature does not verify under the attested key.</summary>
    AssertionSignatureInvalid,

    /// <summary>An App Attest assertion whose counter is not greater than the stored one (a replay or a cloned key).</summary>
    CounterNotIncreasing,

    /// <summary>The grant has an attestation policy, the device key has no accepted attestation, and the release carries no evidence.</summary>
    EvidenceMissing,

    /// <summary>The evidence's challenge was not issued, has expired, was used already, or was issued to another caller.</summary>
    ChallengeUnknown,

    /// <summary>The policy has no section for the evidence's platform.</summary>
    FormatNotAllowed,

    /// <summary>The licence or rule names an attestation policy that is not configured (also logged as an error).</summary>
    PolicyUnknown,

    /// <summary>The Apple policy's <c>ReassertAfter</c> has elapsed since the last verification and the release carries no fresh assertion.</summary>
    ReassertionRequired,
}

/// <summary>Evidence refused, with the reason for the audit record and a detail for the server's log.</summary>
internal sealed class AttestationException : Exception
{
    public AttestationException(AttestationFailure failure, string message, Exception? inner = null)
        : base(message, inner) => Failure = failure;

    public AttestationException()
    {
    }

    public AttestationException(string message)
        : base(message)
    {
    }

    public AttestationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Why.</summary>
    public AttestationFailure Failure { get; }
}

/// <summary>The audit codes of <see cref="AttestationFailure"/>.</summary>
internal static class AttestationFailures
{
    /// <summary>The reason's name in kebab case (<c>UntrustedRoot</c> → <c>untrusted-root</c>).</summary>
    public static string Code(this AttestationFailure failure) => KebabCase.Of(failure.ToString());
}
