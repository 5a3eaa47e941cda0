namespace ModelSeal.Server.Domain;

/// <summary>
/// Who asks, from a validated token: its issuer and subject; for the server's own tokens (<paramref name="OwnIssuer"/>)
/// the licence its <c>lic</c> claim names; and the client address for the audit record.
/// </summary>
internal sealed record Caller(string Issuer, string Subject, bool OwnIssuer, string? LicenceId, string? Client);
