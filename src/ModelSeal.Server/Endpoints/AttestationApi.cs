using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Server.Attestation;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Http;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Endpoints;

/// <summary>
/// <c>POST /v1/attestation/challenges</c> (scope <c>keys</c>) and <c>POST /v1/admin/attestations/reverify</c> (scope
/// <c>admin</c>): docs/protocol.md sections 2.6 and 3.
/// </summary>
internal static class AttestationApi
{
    public static IEndpointRouteBuilder MapAttestationApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/attestation/challenges", IssueChallengeAsync)
            .RequireAuthorization(Authentication.KeysPolicy)
            .RequireRateLimiting(RateLimits.ReleasePolicy)
            .ProducesProblems(401, 403, 429, 503)
            .WithTags("Keys")
            .WithName("IssueAttestationChallenge")
            .WithSummary("Issues a single-use challenge for a device key's attestation evidence, valid for the caller only.");
        app.MapPost("/v1/admin/attestations/reverify", ReverifyAsync)
            .RequireAuthorization(Authentication.AdminPolicy)
            .ProducesProblems(401, 403, 429, 503)
            .WithTags("Administration")
            .WithSummary("Reads the status list file again and re-verifies every accepted Android attestation now; those that fail are rejected.");
        return app;
    }

    internal static async Task<Created<ChallengeResponse>> IssueChallengeAsync(HttpContext http, DeviceAttestations attestations, ServerOptions options, CancellationToken cancellationToken)
    {
        IssuedChallenge issued = await attestations.IssueChallengeAsync(http.Caller(options), cancellationToken).ConfigureAwait(false);
        return TypedResults.Created((string?)null, new ChallengeResponse(System.Buffers.Text.Base64Url.EncodeToString(issued.Challenge), Rfc3339.Format(issued.ExpiresAt)!));
    }

    internal static async Task<Results<Ok<ReverifyResponse>, ProblemHttpResult>> ReverifyAsync(HttpContext http, DeviceAttestations attestations, ServerOptions options, CancellationToken cancellationToken)
    {
        ReverifyResult result;
        try
        {
            result = await attestations.ReverifyAsync(http.Caller(options), cancellationToken).ConfigureAwait(false);
        }
        catch (ServerConfigurationException e)
        {
            // The status list file cannot be read: nothing was re-verified, the list in force stays.
            return Problems.Create(ProblemCodes.NotReady, e.Message);
        }

        return TypedResults.Ok(new ReverifyResponse(result.Checked, [.. result.Rejected.Select(r => new RejectedAttestation(r.Thumbprint, r.Format, r.Reason))]));
    }
}

/// <summary>
/// The <c>attestation</c> member of a release request (docs/protocol.md sections 2.6 and 6.1): its shape and sizes,
/// checked before any rule; each fault is named in <c>errors</c> as <c>attestation.MEMBER</c>.
/// </summary>
internal static class AttestationRequests
{
    /// <summary>Largest challenge accepted, in bytes (the server issues 32).</summary>
    public const int MaxChallengeSize = 64;

    /// <summary>Largest App Attest key id accepted, in bytes (a SHA-256: 32).</summary>
    public const int MaxKeyIdSize = 64;

    /// <summary>
    /// The decoded evidence, or null when there is none or it is malformed; the faults go to <paramref name="errors"/>
    /// when given.
    /// </summary>
    public static ReleaseEvidence? Parse(AttestationEvidence? evidence, Dictionary<string, string[]>? errors)
    {
        if (evidence is null)
        {
            return null;
        }

        var faults = errors ?? new Dictionary<string, string[]>(StringComparer.Ordinal);
        int before = faults.Count;
        byte[]? challenge = Decode(evidence.Challenge, MaxChallengeSize);
        if (challenge is null)
        {
            faults["attestation.challenge"] = [$"Required: base64url of the challenge from POST /v1/attestation/challenges (at most {MaxChallengeSize} bytes)."];
        }

        ReleaseEvidence? parsed = null;
        switch (evidence.Format)
        {
            case EvidenceFormats.AndroidKey:
                List<byte[]>? certificates = Certificates(evidence.Certificates);
                if (certificates is null)
                {
                    faults["attestation.certificates"] = [$"Required for android-key: the attestation chain, leaf first, root last: 2 to {AndroidKeyAttestation.MaxChainLength} base64url DER certificates of at most {AndroidKeyAttestation.MaxCertificateSize} bytes each."];
                }

                parsed = challenge is null || certificates is null ? null : new ReleaseEvidence(EvidenceFormats.AndroidKey, challenge, certificates);
                break;
            case EvidenceFormats.AppleAppAttest:
                byte[]? keyId = Decode(evidence.KeyId, MaxKeyIdSize);
                byte[]? attestationObject = Decode(evidence.AttestationObject, AppleAppAttest.MaxObjectSize);
                byte[]? assertion = Decode(evidence.Assertion, AppleAppAttest.MaxObjectSize);
                Require(faults, keyId, "keyId", $"Required for apple-appattest: base64url of the App Attest key id (at most {MaxKeyIdSize} bytes).");
                Require(faults, attestationObject, "attestationObject", $"Required for apple-appattest: base64url of attestKey's attestation object (at most {AppleAppAttest.MaxObjectSize} bytes).");
                Require(faults, assertion, "assertion", $"Required for apple-appattest: base64url of the assertion binding the device key (at most {AppleAppAttest.MaxObjectSize} bytes).");
                parsed = challenge is null || keyId is null || attestationObject is null || assertion is null
                    ? null
                    : new ReleaseEvidence(EvidenceFormats.AppleAppAttest, challenge, KeyId: keyId, AttestationObject: attestationObject, Assertion: assertion);
                break;
            case EvidenceFormats.AppleAssertion:
                byte[]? reassertion = Decode(evidence.Assertion, AppleAppAttest.MaxObjectSize);
                Require(faults, reassertion, "assertion", $"Required for apple-appattest-assertion: base64url of a fresh assertion over the device key and the challenge (at most {AppleAppAttest.MaxObjectSize} bytes).");
                parsed = challenge is null || reassertion is null ? null : new ReleaseEvidence(EvidenceFormats.AppleAssertion, challenge, Assertion: reassertion);
                break;
            default:
                faults["attestation.format"] = ["Required: android-key, apple-appattest or apple-appattest-assertion."];
                break;
        }

        return faults.Count > before ? null : parsed;
    }

    private static void Require(Dictionary<string, string[]> errors, byte[]? value, string member, string rule)
    {
        if (value is null)
        {
            errors["attestation." + member] = [rule];
        }
    }

    private static List<byte[]>? Certificates(IReadOnlyList<string?>? encoded)
    {
        if (encoded is null || encoded.Count < 2 || encoded.Count > AndroidKeyAttestation.MaxChainLength)
        {
            return null;
        }

        var certificates = new List<byte[]>(encoded.Count);
        foreach (string? text in encoded)
        {
            if (Decode(text, AndroidKeyAttestation.MaxCertificateSize) is not { } der)
            {
                return null;
            }

            certificates.Add(der);
        }

        return certificates;
    }

    private static byte[]? Decode(string? text, int maxBytes) =>
        Callers.DecodeBase64Url(text, ((maxBytes + 2) / 3 * 4) + 1) is { } bytes && bytes.Length <= maxBytes ? bytes : null;
}
