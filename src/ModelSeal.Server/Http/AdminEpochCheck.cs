using System.Globalization;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using ModelSeal.Protocol;
using ModelSeal.Server.Security;

namespace ModelSeal.Server.Http;

/// <summary>
/// The server's own admin tokens are accepted only in the admin epoch they were issued in (claim <c>aep</c>): after a
/// rotation of the admin credential every earlier admin token is refused with 401. Runs after each successful token
/// validation, the cached ones (<see cref="CachingTokenHandler"/>) included, and reads the current epoch from the
/// database each time, so a rotation by another instance or offline counts at once.
/// </summary>
internal static class AdminEpochCheck
{
    public static void Apply(TokenValidatedContext context, string ownIssuer)
    {
        if (context.Principal is not { } user ||
            !string.Equals(user.FindFirst(JwtRegisteredClaimNames.Iss)?.Value, ownIssuer, StringComparison.Ordinal) ||
            !Authentication.HasScope(user, TokenClaims.ScopeAdmin))
        {
            return;
        }

        long current = context.HttpContext.RequestServices.GetRequiredService<AdminCredential>().CurrentEpoch();
        if (!long.TryParse(user.FindFirst(TokenClaims.AdminEpoch)?.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long epoch) || epoch != current)
        {
            context.Fail("The admin token was issued before the admin credential was rotated.");
        }
    }
}
