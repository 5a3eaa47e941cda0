using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Http;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Endpoints;

/// <summary><c>POST /v1/token</c> (docs/protocol.md section 1): the server's own ES256 tokens.</summary>
internal static class TokenApi
{
    public const string LicenceGrant = "licence";
    public const string AdminGrant = "admin";
    public const string AdminSubject = "admin";

    private static readonly byte[] NoCredential = new byte[32];

    public static IEndpointRouteBuilder MapTokenApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/token", IssueAsync)
            .AllowAnonymous()
            .AcceptsJson<TokenRequest>()
            .ProducesProblems(400, 401, 413, 429)
            .WithTags("Tokens")
            .WithName("IssueToken")
            .WithSummary("Exchanges a licence or admin credential for a bearer token.");
        return app;
    }

    internal static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> IssueAsync(HttpContext http, KeyServer server, CancellationToken cancellationToken)
    {
        (TokenRequest? request, ProblemHttpResult? invalid) = await JsonBody.ReadAsync<TokenRequest>(http.Request, cancellationToken).ConfigureAwait(false);
        if (invalid is not null)
        {
            return invalid;
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (request!.GrantType is not (LicenceGrant or AdminGrant))
        {
            errors["grantType"] = ["Required: \"licence\" or \"admin\"."];
        }

        if (string.IsNullOrEmpty(request.Credential) || request.Credential.Length > 256)
        {
            errors["credential"] = ["Required: the credential (at most 256 characters)."];
        }

        if (request.GrantType == LicenceGrant && (string.IsNullOrEmpty(request.LicenceId) || request.LicenceId.Length > 64))
        {
            errors["licenceId"] = ["Required for the licence grant: the licence id (lic_…)."];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        DateTimeOffset now = server.Now();
        int expiresIn = (int)server.Options.TokenLifetime.TotalSeconds;
        if (request.GrantType == AdminGrant)
        {
            if (!server.IsAdminCredential(request.Credential!))
            {
                ServerLog.TokenRefused(server.Logger, AdminGrant, null);
                return Problems.Create(Problems.Unauthorized, "The credential is not valid.");
            }

            ServerLog.TokenIssued(server.Logger, AdminGrant, null);
            return TypedResults.Ok(new TokenResponse(server.Tokens.Issue(AdminSubject, TokenIssuer.ScopeAdmin, null, now), "Bearer", expiresIn));
        }

        string licenceId = request.LicenceId!;
        LicenceRecord? licence = server.Store.Read(s => s.GetLicence(licenceId));
        bool matches = CryptographicOperations.FixedTimeEquals(KeyServer.Hash(request.Credential!), licence?.CredentialHash ?? NoCredential);
        if (licence is null || !matches)
        {
            ServerLog.TokenRefused(server.Logger, LicenceGrant, licence?.LicenceId);
            return Problems.Create(Problems.Unauthorized, "The licence id or credential is not valid.");
        }

        // Revocation, validity and coverage are decided at each release (section 2), where the answer names them.
        ServerLog.TokenIssued(server.Logger, LicenceGrant, licence.LicenceId);
        return TypedResults.Ok(new TokenResponse(server.Tokens.Issue(licence.Subject, TokenIssuer.ScopeKeys, licence.LicenceId, now), "Bearer", expiresIn));
    }
}
