namespace ModelSeal.Protocol;

// The request and answer bodies of docs/protocol.md, defined once: the server, the client runtime, the CLI and the
// build task compile this file (ModelSeal.Protocol.props). Names become camelCase JSON members (ProtocolJson). Times
// are RFC 3339 strings (Rfc3339), binary values base64url without padding.
//
// Request members are optional (nullable, default null) so that the server reports a missing field by name (400
// invalid-request with "errors") instead of failing deserialisation as a whole. Answer members that the server always
// sends are non-nullable: a reader using ProtocolJson refuses an answer that lacks one or sends null.

/// <summary>
/// <c>POST /v1/token</c>: <c>grantType</c> is <c>licence</c> (with <c>licenceId</c>) or <c>admin</c>; with a
/// <c>nonce</c> (base64url, 16 bytes) a licence grant's refusal is signed (docs/protocol.md section 2.2).
/// </summary>
internal sealed record TokenRequest(string? GrantType = null, string? LicenceId = null, string? Credential = null, string? Nonce = null);

/// <summary>A token answer (<c>tokenType</c> is <c>Bearer</c>, <c>expiresIn</c> in seconds).</summary>
internal sealed record TokenResponse(string AccessToken, string TokenType, int ExpiresIn);

/// <summary>
/// <c>POST /v1/keys/release</c>: <c>protocol</c> must be 2 and <c>nonce</c> 16 fresh random bytes (base64url), which
/// the signature of the answer or refusal covers.
/// </summary>
internal sealed record ReleaseRequest(string? ModelId = null, string? Version = null, string? DevicePublicKey = null, string? Nonce = null, int? Protocol = null, AttestationEvidence? Attestation = null);

/// <summary>
/// <c>POST /v1/attestation/challenges</c>: a single-use challenge (base64url of 32 random bytes) for a device key's
/// attestation evidence, valid until <c>expiresAt</c> and only for the caller (issuer and subject) that asked for it
/// (docs/protocol.md section 2.6).
/// </summary>
internal sealed record ChallengeResponse(string Challenge, string ExpiresAt);

/// <summary>
/// Attestation evidence in a release request (docs/protocol.md section 2.6), examined only when the grant has an
/// attestation policy and the device key has no accepted attestation yet (or, for <c>apple-appattest-assertion</c>, to
/// re-verify one). <c>format</c> is <c>android-key</c> (<c>certificates</c>: the key's attestation chain, leaf first,
/// root last, each base64url DER; the key was generated with <c>challenge</c>), <c>apple-appattest</c>
/// (<c>keyId</c>, <c>attestationObject</c> and <c>assertion</c>, base64url) or <c>apple-appattest-assertion</c>
/// (<c>assertion</c> only). <c>challenge</c> is the one the server issued (base64url).
/// </summary>
internal sealed record AttestationEvidence(string? Format = null, string? Challenge = null, IReadOnlyList<string?>? Certificates = null, string? KeyId = null, string? AttestationObject = null, string? Assertion = null);

/// <summary>
/// A data key sealed with HPKE to the requester's public key (a release, or a new version for its publisher), signed by
/// the server's answer key <c>kid</c> (docs/protocol.md section 2.2).
/// </summary>
internal sealed record ReleaseResponse(string ModelId, string Version, string KeyId, string Suite, string Enc, string SealedKey, string LeaseExpiresAt, string Kid, string Signature);

/// <summary><c>POST /v1/admin/models</c>.</summary>
internal sealed record CreateModelRequest(string? ModelId = null);

/// <summary>A created model.</summary>
internal sealed record ModelCreatedResponse(string ModelId, string CreatedAt);

/// <summary>A model with its versions.</summary>
internal sealed record ModelItem(string ModelId, string CreatedAt, IReadOnlyList<VersionItem> Versions);

/// <summary>A model version (never its key); <c>state</c> is <c>active</c>, <c>disabled</c> or <c>destroyed</c>.</summary>
internal sealed record VersionItem(string Version, string KeyId, string State, string CreatedAt);

/// <summary>
/// <c>POST /v1/admin/models/{modelId}/versions</c> (a missing model is created first); without <c>version</c> the
/// server numbers it; <c>protocol</c> and <c>nonce</c> as for a release.
/// </summary>
internal sealed record CreateVersionRequest(string? Version = null, string? PublisherPublicKey = null, string? Nonce = null, int? Protocol = null);

/// <summary>The state of a version after a change.</summary>
internal sealed record StateResponse(string State);

/// <summary><c>POST /v1/admin/licences</c>: with <c>issuer</c> the licence is claimed by a token of that issuer for <c>subject</c>.</summary>
internal sealed record CreateLicenceRequest(string? Subject = null, IReadOnlyList<string?>? Models = null, string? NotBefore = null, string? ExpiresAt = null, int? MaxDevices = null, string? Issuer = null, string? AttestationPolicy = null);

/// <summary>A licence, without its credential; <c>claim</c> is <c>credential</c> or <c>issuer-subject</c>.</summary>
internal sealed record LicenceResponse(string LicenceId, string Subject, IReadOnlyList<string> Models, string? NotBefore, string? ExpiresAt, int MaxDevices, string CreatedAt, string? RevokedAt, string Claim, string? Issuer, string? AttestationPolicy = null);

/// <summary>A new licence with its credential (shown only here; null for a licence claimed by issuer and subject).</summary>
internal sealed record LicenceCreatedResponse(string LicenceId, string? Credential, string Subject, IReadOnlyList<string> Models, string? NotBefore, string? ExpiresAt, int MaxDevices, string CreatedAt, string? RevokedAt, string Claim, string? Issuer, string? AttestationPolicy = null);

/// <summary>A device registered for a licence, by the thumbprint of its public key.</summary>
internal sealed record DeviceItem(string Thumbprint, string FirstSeen, string LastSeen);

/// <summary>
/// <c>PATCH /v1/admin/licences/{licenceId}</c>: the members given change, the others stay. Lowering
/// <c>maxDevices</c> below the devices registered keeps them and refuses new ones.
/// </summary>
internal sealed record EditLicenceRequest(string? ExpiresAt = null, int? MaxDevices = null, IReadOnlyList<string?>? Models = null, string? AttestationPolicy = null);

/// <summary>The answer of <c>DELETE /v1/admin/models/{modelId}</c>: the model and how many (destroyed) versions went with it.</summary>
internal sealed record ModelDeletedResponse(string ModelId, int Versions, string DeletedAt);

/// <summary>
/// One model's key releases on one UTC day (<c>yyyy-MM-dd</c>) and its refusals by problem code (a coalesced refusal
/// record counts as many refusals as its <c>count</c> attribute says).
/// </summary>
internal sealed record UsageItem(string ModelId, string Day, long Releases, long Refusals, IReadOnlyDictionary<string, long> RefusalsByReason);

/// <summary>The answer of <c>GET /v1/admin/usage</c>: per model per day, models by id, days in order.</summary>
internal sealed record UsageResponse(string? Since, string? Until, IReadOnlyList<UsageItem> Items);

/// <summary>A list answer.</summary>
internal sealed record ItemsResponse<T>(IReadOnlyList<T> Items);

/// <summary>The answer of a master key rotation.</summary>
internal sealed record RotateResponse(int MasterKeyVersion, int Rewrapped);

/// <summary>A user (docs/protocol.md section 3): a trusted issuer's subject an entitlement rule granted a key to.</summary>
internal sealed record UserItem(long UserId, string Issuer, string Subject, string CreatedAt, string LastSeen, string? BlockedAt, long Devices);

/// <summary>A device registered for a user, with the entitlement rule it was registered under.</summary>
internal sealed record UserDeviceItem(string Thumbprint, string FirstSeen, string LastSeen, string Rule);

/// <summary>A page of users; <c>next</c> is the <c>after</c> of the next page (null at the end).</summary>
internal sealed record UserPageResponse(IReadOnlyList<UserItem> Items, long? Next);

/// <summary>A user, its devices and its latest key releases and refusals (audit records, newest first).</summary>
internal sealed record UserDetailResponse(UserItem User, IReadOnlyList<UserDeviceItem> Devices, IReadOnlyList<AuditItem> Releases);

/// <summary>An audit record (docs/protocol.md section 4): its fields, its encoding format and its link in the hash chain.</summary>
internal sealed record AuditItem(long Id, string At, string Event, string? Subject, string? LicenceId, string? ModelId, string? Version, string? KeyId, string? Device, string? Client, string Outcome, string? Hash, int Format, string? Issuer, IReadOnlyDictionary<string, string>? Attributes);

/// <summary>A page of audit records; <c>next</c> is the <c>after</c> of the next page (null at the end).</summary>
internal sealed record AuditPage(IReadOnlyList<AuditItem> Items, long? Next);

/// <summary>
/// <c>GET /v1/admin/audit/verify</c> (docs/protocol.md section 4.1): <c>records</c> and <c>lastHash</c> describe the
/// longest intact prefix of the log (all of it when verified); <c>checkpoint</c> is the latest signed checkpoint
/// (section 4.3), null when there is none.
/// </summary>
internal sealed record AuditVerifyResponse(bool Verified, long Records, long? LastId, string LastHash, long? FirstBadId, string? Reason, AuditCheckpointInfo? Checkpoint = null);

/// <summary>
/// A signed audit checkpoint (docs/protocol.md section 4.3): the log had <c>records</c> records, the last with id
/// <c>lastId</c> and hash <c>lastHash</c>, at <c>at</c>; <c>signature</c> is ES256 (r || s, base64url) by the answer
/// key <c>keyId</c> over <see cref="SignedEncoding"/>. <c>verified</c>: the signature verifies under the server's
/// answer key and the log still holds that record, with that hash, as its <c>records</c>-th record.
/// </summary>
internal sealed record AuditCheckpointInfo(long Records, long LastId, string LastHash, string At, string KeyId, string Signature, bool Verified)
{
    /// <summary>The domain separator the signed encoding starts with (followed by a zero byte).</summary>
    public const string Domain = "modelseal-audit-checkpoint-v1";

    /// <summary>
    /// What a checkpoint's signature covers: <c>"modelseal-audit-checkpoint-v1" || 0x00 || u64(records) ||
    /// u64(lastId) || u16(length of lastHash) || lastHash || i64(at, Unix seconds)</c>, big endian.
    /// </summary>
    public static byte[] SignedEncoding(long records, long lastId, ReadOnlySpan<byte> lastHash, long at)
    {
        if (lastHash.Length > ushort.MaxValue)
        {
            throw new ArgumentException("The hash is too long.", nameof(lastHash));
        }

        byte[] bytes = new byte[Domain.Length + 1 + 8 + 8 + 2 + lastHash.Length + 8];
        int offset = System.Text.Encoding.ASCII.GetBytes(Domain, bytes) + 1;
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(offset), records);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(offset + 8), lastId);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset + 16), (ushort)lastHash.Length);
        lastHash.CopyTo(bytes.AsSpan(offset + 18));
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(offset + 18 + lastHash.Length), at);
        return bytes;
    }
}

/// <summary>The server's public signing keys, <c>GET /.well-known/jwks.json</c>: a JWK Set (RFC 7517) <c>{"keys": [...]}</c>.</summary>
internal sealed record JwksResponse(IReadOnlyList<PublicJwk> Keys);

/// <summary>
/// A public signing key as a JSON Web Key (RFC 7517, RFC 7518 section 6.2.1). Only public members: no <c>d</c> can be set.
/// </summary>
/// <param name="Kty">The key type, <c>EC</c>.</param>
/// <param name="Crv">The curve, <c>P-256</c>.</param>
/// <param name="X">The x coordinate, base64url, 32 bytes (left-padded with zeros).</param>
/// <param name="Y">The y coordinate, base64url, 32 bytes (left-padded with zeros).</param>
/// <param name="Kid">The key id the server's JWTs carry in their header.</param>
/// <param name="Alg">The one algorithm the key is used with, <c>ES256</c>.</param>
/// <param name="Use">The use, <c>sig</c>.</param>
/// <param name="Purpose">
/// ModelSeal's member (RFC 7517 section 4: others ignore it): <c>token</c> for the key of the server's JWTs,
/// <c>answer</c> for the key of key answers and key refusals (docs/protocol.md section 2.2).
/// </param>
internal sealed record PublicJwk(string Kty, string Crv, string X, string Y, string Kid, string Alg, string Use, string Purpose)
{
    /// <summary>The purpose of the token key.</summary>
    public const string TokenPurpose = "token";

    /// <summary>The purpose of the answer key.</summary>
    public const string AnswerPurpose = "answer";
}

/// <summary>A health answer.</summary>
internal sealed record HealthResponse(string Status);

/// <summary>
/// An error answer (RFC 9457 <c>application/problem+json</c>) as clients read it; see <see cref="ProblemCodes"/>. A
/// refused key or token request also carries the answer key's <c>kid</c> and <c>signature</c> (docs/protocol.md section 2.2).
/// </summary>
internal sealed record ProblemResponse(string? Type = null, string? Title = null, int? Status = null, string? Detail = null, string? Kid = null, string? Signature = null)
{
    /// <summary>The problem code: <c>type</c> without <see cref="ProblemCodes.TypePrefix"/> (null when the type is not ModelSeal's).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? Code => ProblemCodes.FromType(Type);
}

/// <summary>
/// <c>POST /v1/admin/attestations/reverify</c>: every stored attestation checked again now (Android: the chain against
/// the current status list and roots, and its policy); <c>rejected</c> lists those newly rejected, with the audit reason.
/// </summary>
internal sealed record ReverifyResponse(int Checked, IReadOnlyList<RejectedAttestation> Rejected);

/// <summary>A device key whose attestation re-verification rejected: its thumbprint, evidence format and reason code.</summary>
internal sealed record RejectedAttestation(string Thumbprint, string Format, string Reason);
