using Microsoft.Extensions.Logging;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Domain;

/// <summary>A token the server issued and how long it lives.</summary>
internal sealed record IssuedToken(string AccessToken, int ExpiresIn);

/// <summary>
/// <c>POST /v1/token</c> (docs/protocol.md section 1): credentials in, the server's own tokens out. The admin
/// credential gives an admin token; a credential licence's credential gives a <c>keys</c> token naming the licence,
/// while the licence is in standing (not revoked, valid now: the release rule <see cref="ReleaseRules.CheckStanding"/>).
/// A wrong credential of either kind, or an unknown licence id, gets the same vague refusal.
/// </summary>
internal sealed class TokenGrants(Licences licences, AdminCredential adminCredential, TokenIssuer tokens, Clock clock, ServerOptions options, ILogger<TokenGrants> logger)
{
    public const string AdminSubject = "admin";

    private int ExpiresIn => (int)options.TokenLifetime.TotalSeconds;

    public Outcome<IssuedToken> Admin(string credential)
    {
        if (!adminCredential.Matches(credential, out long epoch))
        {
            ServerLog.TokenRefused(logger, "admin", null);
            return new Refused(Refusal.Unauthorized, "The credential is not valid.");
        }

        ServerLog.TokenIssued(logger, "admin", null);
        return new IssuedToken(tokens.Issue(AdminSubject, TokenClaims.ScopeAdmin, null, clock.Now(), adminEpoch: epoch), ExpiresIn);
    }

    /// <remarks>
    /// Only a matching credential learns the licence's standing: a revoked, expired or not yet valid licence is refused
    /// with its own reason (403), anything else that does not match with the vague 401, so the answer tells no one
    /// without the credential whether a licence id exists or what became of it. Coverage is decided at each release
    /// (section 2), and revocation and validity again there, for tokens issued before they changed.
    /// </remarks>
    public Outcome<IssuedToken> Licence(string licenceId, string credential)
    {
        LicenceRecord? licence = licences.Authenticate(licenceId, credential);
        if (licence is null)
        {
            ServerLog.TokenRefused(logger, "licence", null);
            return new Refused(Refusal.Unauthorized, "The licence id or credential is not valid.");
        }

        if (ReleaseRules.CheckStanding(licence, clock.Now()) is { } refused)
        {
            ServerLog.LicenceTokenRefused(logger, licence.LicenceId, refused.Reason.Code());
            return refused;
        }

        ServerLog.TokenIssued(logger, "licence", licence.LicenceId);
        return new IssuedToken(tokens.Issue(licence.Subject, TokenClaims.ScopeKeys, licence.LicenceId, clock.Now()), ExpiresIn);
    }
}
