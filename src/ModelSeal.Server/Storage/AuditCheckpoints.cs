using System.Security.Cryptography;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Storage;

/// <summary>
/// A signed audit checkpoint as stored (docs/protocol.md section 4.3): the log had <paramref name="Records"/> records,
/// the last with id <paramref name="LastId"/> and hash <paramref name="LastHash"/>, at <paramref name="At"/>; signed
/// with ES256 by the answer key <paramref name="KeyId"/> over <see cref="AuditCheckpointInfo.SignedEncoding"/>.
/// </summary>
internal sealed record AuditCheckpoint(long Id, long Records, long LastId, byte[] LastHash, DateTimeOffset At, string KeyId, byte[] Signature)
{
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
