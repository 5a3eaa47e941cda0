using System.Buffers.Text;
using System.Security.Claims;
using Microsoft.AspNetCore.Http;
using Microsoft.IdentityModel.JsonWebTokens;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Security;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Http;

/// <summary>What the transport hands the domain: the caller of an authenticated request, and decoded fields.</summary>
internal static class Callers
{
    /// <summary>
    /// The caller: the validated token's issuer and subject, the <c>lic</c> claim of the server's own tokens, the client
    /// address, and a trusted issuer's claims for the entitlement rules.
    /// </summary>
    public static Caller Caller(this HttpContext http, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(options);
        string issuer = http.User.FindFirst(JwtRegisteredClaimNames.Iss)?.Value ?? string.Empty;
        bool own = string.Equals(issuer, options.Issuer, StringComparison.Ordinal);
        return new Caller(
            issuer, Authentication.Subject(http.User), own, own ? http.User.FindFirst(TokenClaims.Licence)?.Value : null, http.Connection.RemoteIpAddress?.ToString(),
            own ? null : Claims(http.User));
    }

    /// <summary>
    /// The token's claims as the rules see them (<see cref="ClaimSet"/>): the token handler makes one claim per value
    /// (a JSON array gives several) and types each; a JSON string is typed string (or date-time, when it reads as one),
    /// anything else (a number, a boolean, an object) is kept as a value that matches nothing.
    /// </summary>
    internal static ClaimSet Claims(ClaimsPrincipal user) =>
        new(user.Claims.Select(c => (c.Type, c.Value, c.ValueType is ClaimValueTypes.String or ClaimValueTypes.DateTime)));

    /// <summary>
    /// Decodes strict base64url (RFC 4648 section 5): only <c>A–Z a–z 0–9 - _</c>, no padding, whitespace or line
    /// breaks, and no length that no byte string has; null otherwise.
    /// </summary>
    public static byte[]? DecodeBase64Url(string? text, int maxChars = 1024)
    {
        if (string.IsNullOrEmpty(text) || text.Length > maxChars || text.Length % 4 == 1 || !text.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            return null;
        }

        try
        {
            return Base64Url.DecodeFromChars(text);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
