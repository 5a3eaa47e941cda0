using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Http;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Endpoints;

/// <summary><c>POST /v1/token</c> (docs/protocol.md section 1): the server's own ES256 tokens (<see cref="TokenGrants"/>).</summary>
internal static class TokenApi
{
    public const string LicenceGrant = "licence";
    public const string AdminGrant = "admin";

    public static IEndpointRouteBuilder MapTokenApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/token", IssueAsync)
            .AllowAnonymous()
            .AcceptsJson<TokenRequest>()
            .ProducesProblems(400, 401, 403, 413, 429)
            .WithTags("Tokens")
            .WithName("IssueToken")
            .WithSummary("Exchanges a licence or admin credential for a bearer token.");
        return app;
    }

    internal static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> IssueAsync(HttpContext http, TokenGrants grants, AnswerSigning signing, CancellationToken cancellationToken)
    {
        (TokenRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<TokenRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if ((invalid ?? Validate(request!)) is { } problem)
        {
            return problem;
        }

        Outcome<IssuedToken> issued = request!.GrantType == AdminGrant
            ? grants.Admin(request.Credential!)
            : grants.Licence(request.LicenceId!, request.Credential!);
        if (issued.Succeeded)
        {
            return TypedResults.Ok(new TokenResponse(issued.Value.AccessToken, "Bearer", issued.Value.ExpiresIn));
        }

        // A licence's standing (403) is signed when the client sent a nonce, so that it may drop its leases; the vague
        // 401 never is: it must not tell a guesser anything, and it changes nothing on the client.
        return request.GrantType == LicenceGrant && AnswerSigning.Nonce(request.Nonce) is { } nonce && issued.Refused.Reason != Refusal.Unauthorized
            ? signing.TokenRefused(issued.Refused, nonce, request.LicenceId!)
            : Problems.For(issued.Refused);
    }

    internal static ProblemHttpResult? Validate(TokenRequest request)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (request.GrantType is not (LicenceGrant or AdminGrant))
        {
            errors["grantType"] = ["Required: \"licence\" or \"admin\"."];
        }

        if (string.IsNullOrEmpty(request.Credential) || request.Credential.Length > 256)
        {
            errors["credential"] = ["Required: the credential (at most 256 characters)."];
        }

        if (request.Nonce is not null && AnswerSigning.Nonce(request.Nonce) is null)
        {
            errors["nonce"] = ["Optional: base64url of 16 random bytes chosen by the client for this request."];
        }

        if (request.GrantType == LicenceGrant && (string.IsNullOrEmpty(request.LicenceId) || request.LicenceId.Length > 64))
        {
            errors["licenceId"] = ["Required for the licence grant: the licence id (lic_…)."];
        }

        return errors.Count > 0 ? Problems.Invalid(errors) : null;
    }
}
