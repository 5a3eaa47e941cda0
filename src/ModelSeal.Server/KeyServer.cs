using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server;

/// <summary>The server's state shared by all endpoints: options, store, master keys, token key, admin credential hash.</summary>
internal sealed class KeyServer(ServerOptions options, Store store, MasterKeyRing masterKeys, TokenIssuer tokens, byte[] adminCredentialHash, ILogger logger)
{
    public ServerOptions Options { get; } = options;

    public Store Store { get; } = store;

    public MasterKeyRing MasterKeys { get; } = masterKeys;

    public TokenIssuer Tokens { get; } = tokens;

    public ILogger Logger { get; } = logger;

    /// <summary>Device keys already validated (see <see cref="DeviceKeyCache"/>).</summary>
    public DeviceKeyCache DeviceKeys { get; } = new(65_536);

    /// <summary>Now, in whole seconds (what tokens, leases and records carry).</summary>
    public DateTimeOffset Now() => DateTimeOffset.FromUnixTimeSeconds(Options.Time.GetUtcNow().ToUnixTimeSeconds());

    /// <summary>Compares a presented admin credential with the stored hash in constant time.</summary>
    public bool IsAdminCredential(string credential) =>
        CryptographicOperations.FixedTimeEquals(Hash(credential), adminCredentialHash);

    /// <summary>SHA-256 of a credential's UTF-8 bytes.</summary>
    public static byte[] Hash(string credential) => SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(credential));

    /// <summary>
    /// The caller's licence: by the <c>lic</c> claim for the server's own tokens, by subject for an external
    /// issuer's. Null when there is none or it belongs to another subject.
    /// </summary>
    public LicenceRecord? FindLicence(ClaimsPrincipal user)
    {
        string subject = Authentication.Subject(user);
        bool own = string.Equals(user.FindFirst("iss")?.Value, Options.Issuer, StringComparison.Ordinal);
        string? licenceId = own ? user.FindFirst(TokenIssuer.LicenceClaim)?.Value : null;
        LicenceRecord? licence = own
            ? (licenceId is null ? null : Store.Read(s => s.GetLicence(licenceId)))
            : Store.Read(s => s.FindLicenceBySubject(subject));
        return licence is not null && string.Equals(licence.Subject, subject, StringComparison.Ordinal) ? licence : null;
    }

    /// <summary>Decodes base64url (padding tolerated); null when it is not base64url.</summary>
    public static byte[]? DecodeBase64Url(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 1024 || !System.Buffers.Text.Base64Url.IsValid(text))
        {
            return null;
        }

        try
        {
            return System.Buffers.Text.Base64Url.DecodeFromChars(text);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// The device key imported and validated (a 65-byte uncompressed point on P-256), or null when it is not one;
    /// <paramref name="thumbprint"/> is its <see cref="HpkePublicKey.Thumbprint"/> (remembered for the device's next release).
    /// </summary>
    public HpkeRecipientKey? DeviceKey(byte[]? publicKey, string? thumbprint) => DeviceKeys.Get(publicKey, thumbprint);

    /// <summary>True when the bytes are a 65-byte uncompressed point on P-256.</summary>
    public static bool IsValidPublicKey(byte[]? publicKey)
    {
        if (publicKey is null)
        {
            return false;
        }

        try
        {
            using ECDiffieHellman _ = HpkePublicKey.Import(publicKey);
            return true;
        }
        catch (ModelKeyException)
        {
            return false;
        }
    }

    /// <summary>Appends an audit record in its own transaction; failures are logged, never thrown.</summary>
    public async Task TryAuditAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        try
        {
            DateTimeOffset now = Now();
            await Store.WriteAsync(s => s.AppendAudit(entry, now), cancellationToken).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Best effort by design: a refusal stays a refusal whatever happens to its record.
        catch (Exception e)
#pragma warning restore CA1031
        {
            ServerLog.RefusalNotAudited(Logger, e.GetType().Name);
        }
    }
}
