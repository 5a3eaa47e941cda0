using System.Security.Cryptography;
using ModelSeal.Protocol;
using ModelSeal.Server.Security;

namespace ModelSeal.Server.Storage;

/// <summary>
/// A signed audit checkpoint as stored (docs/protocol.md section 4.3): the log had <paramref name="Records"/> records,
/// the last with id <paramref name="LastId"/> and hash <paramref name="LastHash"/>, at <paramref name="At"/>; signed
/// with ES256 by the answer key <paramref name="KeyId"/> over <see cref="AuditCheckpointInfo.SignedEncoding"/>.
/// </summary>
internal sealed record AuditCheckpoint(long Id, long Records, long LastId, byte[] LastHash, DateTimeOffset At, string KeyId, byte[] Signature)
{
    /// <summary>Signs a checkpoint of the log's head with <paramref name="key"/> (its id is given when stored).</summary>
    public static AuditCheckpoint Sign(ISigningKey key, long records, long lastId, byte[] lastHash, DateTimeOffset at)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(lastHash);
        at = DateTimeOffset.FromUnixTimeSeconds(at.ToUnixTimeSeconds());
        byte[] signature = key.SignHash(SHA256.HashData(AuditCheckpointInfo.SignedEncoding(records, lastId, lastHash, at.ToUnixTimeSeconds())));
        return new AuditCheckpoint(0, records, lastId, lastHash, at, key.KeyId, signature);
    }

    /// <summary>True when the checkpoint names <paramref name="keyId"/> and its signature verifies under that public key.</summary>
    public bool IsSignedBy(ECParameters publicKey, string keyId)
    {
        if (!string.Equals(KeyId, keyId, StringComparison.Ordinal) || Signature.Length != 64)
        {
            return false;
        }

        using var ecdsa = ECDsa.Create(new ECParameters { Curve = publicKey.Curve, Q = publicKey.Q });
        return ecdsa.VerifyData(AuditCheckpointInfo.SignedEncoding(Records, LastId, LastHash, At.ToUnixTimeSeconds()), Signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }
}
