using System.Buffers.Text;
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
    /// <summary>The caller: the validated token's issuer and subject, the <c>lic</c> claim of the server's own tokens, the client address.</summary>
    public static Caller Caller(this HttpContext http, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(options);
        string issuer = http.User.FindFirst(JwtRegisteredClaimNames.Iss)?.Value ?? string.Empty;
        bool own = string.Equals(issuer, options.Issuer, StringComparison.Ordinal);
        return new Caller(issuer, Authentication.Subject(http.User), own, own ? http.User.FindFirst(TokenClaims.Licence)?.Value : null, http.Connection.RemoteIpAddress?.ToString());
    }

    /// <summary>
    /// Decodes strict base64url (RFC 4648 section 5): only <c>A–Z a–z 0–9 - _</c>, no padding, whitespace or line
    /// breaks, and no length that no byte string has; null otherwise.
    /// </summary>
    public static byte[]? DecodeBase64Url(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 1024 || text.Length % 4 == 1 || !text.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
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
