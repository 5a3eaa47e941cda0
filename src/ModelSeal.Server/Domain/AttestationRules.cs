using System.Security.Cryptography;
using ModelSeal.Server.Attestation;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>The evidence formats of a release request's <c>attestation</c> member (docs/protocol.md section 2.6).</summary>
internal static class EvidenceFormats
{
    public const string AndroidKey = "android-key";
    public const string AppleAppAttest = "apple-appattest";
    public const string AppleAssertion = "apple-appattest-assertion";
}

/// <summary>
/// A release request's attestation evidence, decoded (shape and sizes checked by the endpoint): the format, the
/// server-issued challenge it was made for, and the format's members.
/// </summary>
internal sealed record ReleaseEvidence(string Format, byte[] Challenge, IReadOnlyList<byte[]>? Certificates = null, byte[]? KeyId = null, byte[]? AttestationObject = null, byte[]? Assertion = null);

/// <summary>
/// What a release under an attestation policy writes in its transaction, decided before it: the challenge to use up
/// (null: the evidence was not examined), the attestation to store (a first registration of the key), or an App Attest
/// counter to store (a re-assertion).
/// </summary>
internal sealed record AttestationStep(byte[] Challenge, DeviceAttestationRecord? Accept, uint? Counter);

/// <summary>
/// The attestation rule of a release (docs/protocol.md section 2.6) as a pure function of the policy, the trust, the
/// device key's accepted attestation, the evidence and the time. Called after the other rules decided the grant and
/// the version, before anything is written.
/// </summary>
internal static class AttestationRules
{
    /// <summary>What a client is told of any attestation refusal (the reason goes to the audit record only).</summary>
    public const string RejectedDetail = "The device's attestation evidence was not accepted under this grant's attestation policy.";

    /// <summary>
    /// Decides the release's attestation: null when nothing is to be written (the key's accepted attestation satisfies
    /// the policy), an <see cref="AttestationStep"/> to write, or a refusal (<see cref="Refusal.AttestationRejected"/>
    /// with the reason code). Evidence is examined only when the key has no accepted attestation, or to re-assert an
    /// accepted App Attest key; otherwise it is ignored.
    /// </summary>
    public static Outcome<AttestationStep?> Check(string policyName, AttestationTrust trust, DeviceAttestationRecord? accepted, ReleaseEvidence? evidence, byte[] devicePublicKey, string device, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(trust);
        ArgumentNullException.ThrowIfNull(devicePublicKey);
        if (!trust.Policies.TryGetValue(policyName, out AttestationPolicy? policy))
        {
            return Rejected(AttestationFailure.PolicyUnknown.Code(), $"The attestation policy '{policyName}' is not configured.");
        }

        if (accepted is { RejectedAt: { } rejectedAt })
        {
            // Rejected by re-verification: refused with the reason stored then.
            return Rejected(accepted.RejectedReason ?? AttestationFailure.CertificateRevoked.Code(), $"Re-verification rejected this device's attestation at {rejectedAt:O}.");
        }

        try
        {
            return accepted is null ? Register(policy, trust, evidence, devicePublicKey, device, now) : Reuse(policy, trust, accepted, evidence, devicePublicKey, now);
        }
        catch (AttestationException e)
        {
            return Rejected(e.Failure.Code(), e.Message);
        }
    }

    /// <summary>A refusal for an attestation reason (its audit code), with the detail for the server's log.</summary>
    public static Refused Rejected(string code, string logDetail) => new(Refusal.AttestationRejected, RejectedDetail, code) { LogDetail = logDetail };

    /// <summary>
    /// Re-checks an accepted Android attestation now: the stored chain against the roots and status list in force, and
    /// the policy it was accepted under (its own challenge, the device key). Returns null or the reason's code and detail.
    /// </summary>
    public static (string Code, string Detail)? Reverify(DeviceAttestationRecord accepted, AttestationTrust trust, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(accepted);
        ArgumentNullException.ThrowIfNull(trust);
        if (!trust.Policies.TryGetValue(accepted.Policy, out AttestationPolicy? policy))
        {
            return (AttestationFailure.PolicyUnknown.Code(), $"The attestation policy '{accepted.Policy}' is not configured any more.");
        }

        try
        {
            CheckAndroid(policy, trust, accepted.Certificates ?? [], accepted.Challenge ?? [], accepted.DevicePublicKey, now);
            return null;
        }
        catch (AttestationException e)
        {
            return (e.Failure.Code(), e.Message);
        }
    }

    private static AttestationStep? Reuse(AttestationPolicy policy, AttestationTrust trust, DeviceAttestationRecord accepted, ReleaseEvidence? evidence, byte[] devicePublicKey, DateTimeOffset now)
    {
        if (!string.Equals(accepted.Policy, policy.Name, StringComparison.Ordinal))
        {
            // Accepted under another policy: the stored facts must satisfy this one too (no new challenge needed).
            if (accepted.Format == EvidenceFormats.AndroidKey)
            {
                CheckAndroid(policy, trust, accepted.Certificates ?? [], accepted.Challenge ?? [], devicePublicKey, now);
            }
            else
            {
                AppleAppAttestPolicy apple = policy.Apple ?? throw FormatNotAllowed(policy, accepted.Format);
                if (accepted.AppId is null || !apple.AppIds.Contains(accepted.AppId))
                {
                    throw new AttestationException(AttestationFailure.AppIdNotAllowed, $"The key was attested for App ID '{accepted.AppId}', which policy '{policy.Name}' does not list.");
                }

                if (accepted.Environment != nameof(AppAttestEnvironment.Production) && !apple.AllowDevelopment)
                {
                    throw new AttestationException(AttestationFailure.EnvironmentNotAllowed, $"The key is from the {accepted.Environment} environment; policy '{policy.Name}' allows production only.");
                }
            }
        }

        if (accepted.Format != EvidenceFormats.AppleAppAttest)
        {
            return null;
        }

        if (evidence is { Format: EvidenceFormats.AppleAssertion })
        {
            byte[] clientDataHash = AppleAppAttestBinding.DeviceKeyClientDataHash(evidence.Challenge, devicePublicKey);
            AppleAssertion assertion = AppleAppAttest.VerifyAssertion(evidence.Assertion, clientDataHash, accepted.AttestedKey, accepted.AppId!, (uint)accepted.Counter);
            return new AttestationStep(evidence.Challenge, null, assertion.Counter);
        }

        if (policy.Apple?.ReassertAfter is { } reassertAfter && now - (accepted.ReverifiedAt ?? accepted.VerifiedAt) > reassertAfter)
        {
            throw new AttestationException(AttestationFailure.ReassertionRequired, $"The key was last verified at {(accepted.ReverifiedAt ?? accepted.VerifiedAt):O}; policy '{policy.Name}' requires an assertion every {reassertAfter}.");
        }

        return null;
    }

    private static AttestationStep Register(AttestationPolicy policy, AttestationTrust trust, ReleaseEvidence? evidence, byte[] devicePublicKey, string device, DateTimeOffset now)
    {
        if (evidence is null or { Format: EvidenceFormats.AppleAssertion })
        {
            throw new AttestationException(AttestationFailure.EvidenceMissing, $"Policy '{policy.Name}' requires attestation evidence for a device key it has not accepted yet, and the request carries {(evidence is null ? "none" : "only an assertion")}.");
        }

        if (evidence.Format == EvidenceFormats.AndroidKey)
        {
            CheckAndroid(policy, trust, evidence.Certificates!, evidence.Challenge, devicePublicKey, now);
            return new AttestationStep(evidence.Challenge, new DeviceAttestationRecord(device, EvidenceFormats.AndroidKey, policy.Name, devicePublicKey, evidence.Certificates, evidence.Challenge, null, null, null, null, 0, now), null);
        }

        AppleAppAttestPolicy apple = policy.Apple ?? throw FormatNotAllowed(policy, evidence.Format);
        AppleAttestation attestation = AppleAppAttest.VerifyAttestation(evidence.AttestationObject, SHA256.HashData(evidence.Challenge), evidence.KeyId, apple, trust.AppleRoot, now);
        byte[] clientDataHash = AppleAppAttestBinding.DeviceKeyClientDataHash(evidence.Challenge, devicePublicKey);
        AppleAssertion binding = AppleAppAttest.VerifyAssertion(evidence.Assertion, clientDataHash, attestation.PublicKey, attestation.AppId, attestation.Counter);
        return new AttestationStep(
            evidence.Challenge,
            new DeviceAttestationRecord(device, EvidenceFormats.AppleAppAttest, policy.Name, devicePublicKey, null, evidence.Challenge, attestation.KeyId, attestation.PublicKey, attestation.AppId, attestation.Environment.ToString(), binding.Counter, now),
            null);
    }

    private static void CheckAndroid(AttestationPolicy policy, AttestationTrust trust, IReadOnlyList<byte[]> chain, byte[] challenge, byte[] devicePublicKey, DateTimeOffset now)
    {
        AndroidAttestationPolicy android = policy.Android ?? throw FormatNotAllowed(policy, EvidenceFormats.AndroidKey);
        android.Check(AndroidKeyAttestation.Verify(chain, trust.Android, now), challenge, devicePublicKey);
    }

    private static AttestationException FormatNotAllowed(AttestationPolicy policy, string format) =>
        new(AttestationFailure.FormatNotAllowed, $"Policy '{policy.Name}' has no section for {format} evidence.");
}
