using System.Buffers.Text;
using System.Text.Json;

namespace ModelSeal.Protocol;

/// <summary>The claims of the server's tokens (docs/protocol.md section 1) and the one reader of a token's subject.</summary>
internal static class TokenClaims
{
    /// <summary>The subject: a licence's subject, or the administrator. It is part of the HPKE <c>info</c> of a release.</summary>
    public const string Subject = "sub";

    /// <summary>Space-separated scopes: <see cref="ScopeKeys"/> or <see cref="ScopeAdmin"/>.</summary>
    public const string Scope = "scope";

    /// <summary>The licence a device token was issued for.</summary>
    public const string Licence = "lic";

    /// <summary>
    /// The admin epoch an admin token of the server was issued in (a JSON number): the server accepts its own admin
    /// tokens only while this is the current epoch, which each rotation of the admin credential moves on.
    /// </summary>
    public const string AdminEpoch = "aep";

    public const string ScopeKeys = "keys";
    public const string ScopeAdmin = "admin";

    /// <summary>The expiry (a NumericDate, seconds since the Unix epoch).</summary>
    public const string Expiry = "exp";

    /// <summary>
    /// The <c>sub</c> of a compact JWT, read without verifying it (the server verifies its own tokens; a client needs the
    /// subject only to compute the HPKE <c>info</c>), or null when the token has no readable non-empty subject.
    /// </summary>
    public static string? SubjectOf(string? token) => Read(token) is { } claims ? claims.Subject : null;

    /// <summary>
    /// The <c>sub</c> and <c>exp</c> of a compact JWT, read without verifying it, or null when the token is not three
    /// dot-separated parts whose second is base64url of a JSON object. A claim that is missing or of another type
    /// (a <c>sub</c> that is not a non-empty string, an <c>exp</c> that is not a number) is null.
    /// </summary>
    public static (string? Subject, DateTimeOffset? ExpiresAt)? Read(string? token)
    {
        string[] parts = token?.Split('.') ?? [];
        if (parts.Length != 3)
        {
            return null;
        }

        try
        {
            using JsonDocument payload = JsonDocument.Parse(Base64Url.DecodeFromChars(parts[1]));
            if (payload.RootElement.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            string? subject = payload.RootElement.TryGetProperty(Subject, out JsonElement sub)
                && sub.ValueKind == JsonValueKind.String
                && sub.GetString() is { Length: > 0 } s ? s : null;
            DateTimeOffset? expiresAt = null;
            if (payload.RootElement.TryGetProperty(Expiry, out JsonElement exp) && exp.ValueKind == JsonValueKind.Number
                && exp.TryGetDouble(out double seconds) && double.IsFinite(seconds)
                && seconds >= 0 && seconds <= DateTimeOffset.MaxValue.ToUnixTimeSeconds())
            {
                expiresAt = DateTimeOffset.FromUnixTimeSeconds((long)Math.Floor(seconds));
            }

            return (subject, expiresAt);
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            return null;
        }
    }
}
