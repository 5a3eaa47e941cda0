using System.Security.Cryptography;

namespace ModelSeal.Server.Attestation;

/// <summary>
/// What a release policy demands of an Android device key's attestation, beyond a verified chain
/// (<see cref="AndroidKeyAttestation.Verify"/>). Package names and signing-certificate digests come from the OS, not
/// from the secure hardware, so a device that runs a modified OS could lie about them; that is why a locked bootloader
/// and a VERIFIED boot state are required by default.
/// </summary>
internal sealed record AndroidAttestationPolicy
{
    /// <summary>The weakest place the key may live: TEE (the default) or StrongBox.</summary>
    public AndroidSecurityLevel MinimumSecurityLevel { get; init; } = AndroidSecurityLevel.TrustedEnvironment;

    /// <summary>The app's package names that may receive keys (at least one of the attested packages must be listed).</summary>
    public IReadOnlySet<string> PackageNames { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>The app's signing certificates, as lowercase hex SHA-256 digests (one of the attested digests must be listed).</summary>
    public IReadOnlySet<string> SigningCertificateDigests { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Whether the bootloader must be locked and the boot state VERIFIED (default: yes).</summary>
    public bool RequireVerifiedBoot { get; init; } = true;

    /// <summary>The OID of EC public keys in SubjectPublicKeyInfo.</summary>
    private const string EcPublicKey = "1.2.840.10045.2.1";

    /// <summary>
    /// Checks a verified attestation against this policy, the challenge the server issued, and the device public key
    /// (the 65-byte uncompressed P-256 point) the model key would be sealed to. The checks run in a fixed order and the
    /// first failure is the reason.
    /// </summary>
    /// <exception cref="AttestationException">The attestation does not satisfy the policy.</exception>
    public void Check(AndroidAttestation attestation, ReadOnlySpan<byte> challenge, ReadOnlySpan<byte> devicePublicKey)
    {
        ArgumentNullException.ThrowIfNull(attestation);
        KeyDescription description = attestation.Description;
        AuthorizationList enforced = description.Enforced;
        AndroidSecurityLevel level = (AndroidSecurityLevel)Math.Min((int)description.AttestationSecurityLevel, (int)description.KeyMintSecurityLevel);
        if (level < MinimumSecurityLevel)
        {
            throw new AttestationException(AttestationFailure.SecurityLevel, $"The key is attested at security level {level}; the policy requires {MinimumSecurityLevel}.");
        }

        if (attestation.PublicKeyAlgorithm != EcPublicKey || enforced.Algorithm != AuthorizationList.AlgorithmEc || enforced.EcCurve is not (null or AuthorizationList.CurveP256) || P256Point(attestation.SubjectPublicKeyInfo) is not { } point)
        {
            throw new AttestationException(AttestationFailure.UnsupportedKeyType, $"The attested key is not an EC P-256 key (algorithm {attestation.PublicKeyAlgorithm}).");
        }

        if (!CryptographicOperations.FixedTimeEquals(description.Challenge, challenge))
        {
            throw new AttestationException(AttestationFailure.ChallengeMismatch, "The attestation's challenge is not the one the server issued for this registration.");
        }

        if (!point.AsSpan().SequenceEqual(devicePublicKey))
        {
            throw new AttestationException(AttestationFailure.KeyMismatch, "The attested key is not the device key of the request.");
        }

        if (enforced.Origin != AuthorizationList.OriginGenerated)
        {
            throw new AttestationException(AttestationFailure.KeyImported, $"The key's origin is {enforced.Origin?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "absent"}, not GENERATED: its private half existed outside the secure hardware.");
        }

        if (!enforced.Purposes.Contains(AuthorizationList.PurposeAgreeKey))
        {
            throw new AttestationException(AttestationFailure.Purpose, "The key's purposes do not include AGREE_KEY.");
        }

        AttestationApplicationId? app = description.SoftwareEnforced.ApplicationId ?? description.HardwareEnforced.ApplicationId;
        if (app is null || !app.PackageNames.Any(PackageNames.Contains))
        {
            throw new AttestationException(AttestationFailure.PackageNotAllowed, $"The attested app ({(app is null ? "none" : string.Join(", ", app.PackageNames))}) is not on the allow-list.");
        }

        if (!app.SignatureDigests.Any(SigningCertificateDigests.Contains))
        {
            throw new AttestationException(AttestationFailure.SigningCertificateNotAllowed, "None of the app's signing certificates is on the allow-list.");
        }

        if (RequireVerifiedBoot)
        {
            RootOfTrust? root = enforced.RootOfTrust;
            if (root is not { DeviceLocked: true })
            {
                throw new AttestationException(AttestationFailure.DeviceUnlocked, "The device's bootloader is not locked.");
            }

            if (root.BootState != VerifiedBootState.Verified)
            {
                throw new AttestationException(AttestationFailure.BootNotVerified, $"The device's verified boot state is {root.BootState}, not Verified.");
            }
        }
    }

    /// <summary>The uncompressed point of a P-256 SubjectPublicKeyInfo, or null when it is another key.</summary>
    private static byte[]? P256Point(byte[] subjectPublicKeyInfo)
    {
        try
        {
            using var key = ECDiffieHellman.Create();
            key.ImportSubjectPublicKeyInfo(subjectPublicKeyInfo, out _);
            ECParameters parameters = key.ExportParameters(includePrivateParameters: false);
            if (parameters.Curve.Oid?.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
            {
                return null;
            }

            return [0x04, .. parameters.Q.X!, .. parameters.Q.Y!];
        }
        catch (CryptographicException)
        {
            return null;
        }
    }
}
