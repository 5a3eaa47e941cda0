using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace ModelSeal.Protocol;

/// <summary>
/// The signed answers of protocol version 2 (docs/protocol.md section 2.2): what the server's answer key signs for a
/// released key, a refused key and a refused token, and how a client checks it. Every statement is
/// <c>"modelseal-signed-answer" || 0x00 || protocol (1 byte) || kind (1 byte)</c> followed by its fields, each as a
/// 2-byte big-endian length and the bytes; the signature is ES256 (ECDSA P-256 over SHA-256, 64 bytes r || s).
/// </summary>
internal static class SignedAnswers
{
    /// <summary>The protocol version requests declare in <c>protocol</c> and statements carry.</summary>
    public const int ProtocolVersion = 2;

    /// <summary>Size of the client's nonce.</summary>
    public const int NonceSize = 16;

    /// <summary>Size of an ES256 signature (r || s).</summary>
    public const int SignatureSize = 64;

    /// <summary>Kind byte: a data key sealed to the requester (a release, or a new version for its publisher).</summary>
    public const byte KeyReleased = 1;

    /// <summary>Kind byte: a key request refused with a problem code.</summary>
    public const byte KeyRefused = 2;

    /// <summary>Kind byte: a token request refused with a problem code.</summary>
    public const byte TokenRefused = 3;

    private static ReadOnlySpan<byte> Label => "modelseal-signed-answer"u8;

    /// <summary>
    /// The statement of a released key: nonce, recipient public key (65 bytes), model id, concrete version, key id,
    /// subject, lease expiry (8 bytes, Unix seconds), <c>enc</c> and the sealed key.
    /// </summary>
    public static byte[] Released(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> recipientKey, string modelId, string version, string keyId, string subject, DateTimeOffset leaseExpiresAt, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> sealedKey)
    {
        Span<byte> lease = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(lease, leaseExpiresAt.ToUnixTimeSeconds());
        var statement = new Statement(KeyReleased);
        statement.Add(nonce);
        statement.Add(recipientKey);
        statement.Add(modelId);
        statement.Add(version);
        statement.Add(keyId);
        statement.Add(subject);
        statement.Add(lease);
        statement.Add(enc);
        statement.Add(sealedKey);
        return statement.ToArray();
    }

    /// <summary>
    /// The statement of a refused key request: nonce, the recipient public key as sent (its decoded bytes), the model id
    /// and version as asked (<c>latest</c> stays <c>latest</c>), the token's subject and the problem code.
    /// </summary>
    public static byte[] Refused(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> recipientKey, string modelId, string version, string subject, string problemCode)
    {
        var statement = new Statement(KeyRefused);
        statement.Add(nonce);
        statement.Add(recipientKey);
        statement.Add(modelId);
        statement.Add(version);
        statement.Add(subject);
        statement.Add(problemCode);
        return statement.ToArray();
    }

    /// <summary>The statement of a refused token request: nonce, the licence id as sent and the problem code.</summary>
    public static byte[] TokenRefusedStatement(ReadOnlySpan<byte> nonce, string licenceId, string problemCode)
    {
        var statement = new Statement(TokenRefused);
        statement.Add(nonce);
        statement.Add(licenceId);
        statement.Add(problemCode);
        return statement.ToArray();
    }

    /// <summary>A fresh nonce for one request.</summary>
    public static byte[] NewNonce() => RandomNumberGenerator.GetBytes(NonceSize);

    /// <summary>
    /// True when <paramref name="signature"/> (base64url, 64 bytes) is an ES256 signature of <paramref name="statement"/>
    /// by <paramref name="key"/>; false for anything malformed.
    /// </summary>
    public static bool Verify(ECDsa key, ReadOnlySpan<byte> statement, string? signature)
    {
        ArgumentNullException.ThrowIfNull(key);
        Span<byte> bytes = stackalloc byte[SignatureSize];
        return signature is { Length: 86 }
            && Base64Url.IsValid(signature)
            && Base64Url.TryDecodeFromChars(signature, bytes, out int written)
            && written == SignatureSize
            && key.VerifyData(statement, bytes, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    /// <summary>
    /// The server's answer key from its JWKS: the key with <c>purpose</c> <c>answer</c> (and, when <paramref name="pinnedKeyId"/>
    /// is set, that <c>kid</c>), an ES256 P-256 key whose <c>kid</c> is the base64url SHA-256 of its point — so a pinned
    /// <c>kid</c> pins the key itself. Null when there is no such key.
    /// </summary>
    public static AnswerKey? FindAnswerKey(JwksResponse jwks, string? pinnedKeyId)
    {
        ArgumentNullException.ThrowIfNull(jwks);
        foreach (PublicJwk jwk in jwks.Keys)
        {
            if (jwk is not { Kty: "EC", Crv: "P-256", Alg: "ES256", Use: "sig", Purpose: PublicJwk.AnswerPurpose }
                || (pinnedKeyId is not null && jwk.Kid != pinnedKeyId)
                || !TryDecode(jwk.X, out byte[] x) || !TryDecode(jwk.Y, out byte[] y))
            {
                continue;
            }

            byte[] point = [0x04, .. x, .. y];
            if (Base64Url.EncodeToString(SHA256.HashData(point)) != jwk.Kid)
            {
                continue;
            }

            try
            {
                return new AnswerKey(jwk.Kid, ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = x, Y = y } }));
            }
            catch (CryptographicException)
            {
                // Not a point on the curve.
            }
        }

        return null;
    }

    private static bool TryDecode(string value, out byte[] coordinate)
    {
        coordinate = new byte[32];
        return value is { Length: 43 } && Base64Url.IsValid(value) && Base64Url.TryDecodeFromChars(value, coordinate, out int written) && written == 32;
    }

    /// <summary>A statement being built: label, protocol, kind, then length-prefixed fields.</summary>
    private sealed class Statement
    {
        private readonly List<byte> _bytes = new(256);

        public Statement(byte kind)
        {
            _bytes.AddRange(Label);
            _bytes.Add(0x00);
            _bytes.Add(ProtocolVersion);
            _bytes.Add(kind);
        }

        public void Add(string field) => Add(Encoding.UTF8.GetBytes(field));

        public void Add(ReadOnlySpan<byte> field)
        {
            if (field.Length > ushort.MaxValue)
            {
                throw new ArgumentException("A signed-answer field is longer than 65535 bytes.", nameof(field));
            }

            Span<byte> length = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(length, (ushort)field.Length);
            _bytes.AddRange(length);
            _bytes.AddRange(field);
        }

        public byte[] ToArray() => [.. _bytes];
    }
}

/// <summary>The server's answer key as a verifier holds it: its <c>kid</c> and public key (not a message: a class, not a record).</summary>
internal sealed class AnswerKey(string keyId, ECDsa publicKey) : IDisposable
{
    public string KeyId { get; } = keyId;

    public ECDsa PublicKey { get; } = publicKey;

    public void Dispose() => PublicKey.Dispose();
}
