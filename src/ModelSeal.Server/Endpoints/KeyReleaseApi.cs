using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Http;
using ModelSeal.Server.Security;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Endpoints;

/// <summary><c>POST /v1/keys/release</c> (docs/protocol.md section 2): parse, ask <see cref="KeyReleases"/>, answer.</summary>
internal static class KeyReleaseApi
{
    public static IEndpointRouteBuilder MapKeyReleaseApi(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/keys")
            .RequireAuthorization(Authentication.KeysPolicy)
            .RequireRateLimiting(RateLimits.ReleasePolicy)
            .ProducesProblems(400, 401, 403, 404, 410, 413, 429, 503)
            .WithTags("Keys");
        group.MapPost("/release", ReleaseAsync)
            .AcceptsJson<ReleaseRequest>()
            .WithName("ReleaseKey")
            .WithSummary("Releases a model version's data key, sealed with HPKE to the device's public key.");
        return app;
    }

    internal static async Task<Results<Ok<ReleaseResponse>, ProblemHttpResult>> ReleaseAsync(HttpContext http, KeyReleases releases, AnswerSigning signing, ServerOptions options, ServerTelemetry telemetry, CancellationToken cancellationToken)
    {
        (ReleaseRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<ReleaseRequest>(http.Request, cancellationToken, JsonBody.ReleaseMaxBytes).ConfigureAwait(false);
        if ((invalid ?? Validate(request!)) is { } problem)
        {
            return problem;
        }

        byte[] nonce = AnswerSigning.Nonce(request!.Nonce)!;
        byte[] deviceKey = Callers.DecodeBase64Url(request.DevicePublicKey) ?? [];
        var query = new ReleaseQuery(request.ModelId!, request.Version!, deviceKey.Length > 0 ? deviceKey : null, AttestationRequests.Parse(request.Attestation, null));
        Caller caller = http.Caller(options);
        Outcome<ReleasedKey> outcome = await releases.ReleaseAsync(caller, query, cancellationToken).ConfigureAwait(false);
        if (!outcome.Succeeded)
        {
            // Counted by ServerTelemetry when the response starts (as are refusals before this handler: 401, 429...).
            http.Items[ServerTelemetry.ReasonItem] = outcome.Refused.Reason.Code();
            return signing.KeyRefused(outcome.Refused, nonce, deviceKey, query.ModelId, query.Version, caller.Subject);
        }

        telemetry.KeyReleased(outcome.Value.ModelId);
        return TypedResults.Ok(signing.Released(outcome.Value, nonce, deviceKey, caller.Subject));
    }

    internal static ProblemHttpResult? Validate(ReleaseRequest request)
    {
        if (UnsupportedProtocol(request.Protocol) is { } unsupported)
        {
            return unsupported;
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (AnswerSigning.Nonce(request.Nonce) is null)
        {
            errors["nonce"] = [NonceRule];
        }

        if (!Identifier.IsValid(request.ModelId, Identifier.MaxIdLength))
        {
            errors["modelId"] = ["Required: an identifier (format.md 1.1) of 1 to 128 characters."];
        }

        if (request.Version != ReleaseRules.Latest && !Identifier.IsValid(request.Version, Identifier.MaxVersionLength))
        {
            errors["version"] = ["Required: \"latest\" or an identifier (format.md 1.1) of 1 to 64 characters."];
        }

        if (string.IsNullOrEmpty(request.DevicePublicKey))
        {
            errors["devicePublicKey"] = ["Required: base64url of the device's 65-byte uncompressed P-256 public key."];
        }

        AttestationRequests.Parse(request.Attestation, errors);
        return errors.Count > 0 ? Problems.Invalid(errors) : null;
    }

    /// <summary>The rule for <c>nonce</c> in the requests whose answers are signed.</summary>
    internal const string NonceRule = "Required: base64url of 16 random bytes chosen by the client for this request.";

    /// <summary>400 unsupported-protocol-version unless <paramref name="protocol"/> is the one this server speaks.</summary>
    internal static ProblemHttpResult? UnsupportedProtocol(int? protocol) =>
        protocol == SignedAnswers.ProtocolVersion
            ? null
            : Problems.Create(ProblemCodes.UnsupportedProtocolVersion, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"This server speaks key protocol {SignedAnswers.ProtocolVersion} (signed answers): send \"protocol\": {SignedAnswers.ProtocolVersion} and a \"nonce\". Update the client."));
}
