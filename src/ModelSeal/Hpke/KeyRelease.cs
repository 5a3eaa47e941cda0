using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ModelSeal.Hpke;

/// <summary>
/// The HPKE binding of a released data key (docs/protocol.md, section 2): the <c>info</c> that ties the sealed key to
/// model, version, key id and token subject, and the associated data that authenticates the lease expiry. Used by
/// the server to seal and by clients (and the CLI's publisher flow) to open.
/// </summary>
public static class KeyRelease
{
    /// <summary>The suite name in release answers.</summary>
    public const string Suite = "HPKE-P256-SHA256-AES256GCM";

    private static ReadOnlySpan<byte> Label => "modelseal-key-release-v1"u8;

    /// <summary>
    /// info = "modelseal-key-release-v1" || 0x00 || len16(modelId) || modelId || len16(version) || version ||
    /// len16(keyId) || keyId || len16(subject) || subject.
    /// </summary>
    internal static byte[] Info(string modelId, string version, string keyId, string subject)
    {
        string[] parts = [modelId, version, keyId, subject];
        int length = Label.Length + 1 + parts.Sum(p => 2 + Encoding.UTF8.GetByteCount(p));
        byte[] info = new byte[length];
        Label.CopyTo(info);
        int position = Label.Length + 1;
        foreach (string part in parts)
        {
            int count = Encoding.UTF8.GetBytes(part, info.AsSpan(position + 2));
            if (count > ushort.MaxValue)
            {
                throw new ArgumentException("A key-release field is longer than 65535 bytes.", nameof(subject));
            }

            BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(position), (ushort)count);
            position += 2 + count;
        }

        return info;
    }

    /// <summary>aad = the lease expiry as Unix seconds, 8 bytes big-endian.</summary>
    internal static byte[] Aad(DateTimeOffset leaseExpiresAt)
    {
        byte[] aad = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(aad, leaseExpiresAt.ToUnixTimeSeconds());
        return aad;
    }

    /// <summary>Seals <paramref name="dataKey"/> to a device's public key.</summary>
    /// <returns>The encapsulated key and the sealed key (48 bytes).</returns>
    public static (byte[] Enc, byte[] SealedKey) Seal(ModelKey dataKey, HpkePublicKey device, string modelId, string version, string subject, DateTimeOffset leaseExpiresAt)
    {
        ArgumentNullException.ThrowIfNull(dataKey);
        return Hpke.Seal(device, Info(modelId, version, dataKey.KeyId, subject), Aad(leaseExpiresAt), dataKey.Bytes);
    }

    /// <summary>
    /// Opens a released key with the device's key (<see cref="Hpke.Open"/>: the private key is used only through
    /// <paramref name="device"/>'s key agreement); the key id becomes the <see cref="ModelKey"/>'s id.
    /// </summary>
    /// <exception cref="HpkeOpenException">Not sealed to this device for this model, version, key id, subject and lease.</exception>
    public static ModelKey Open(IHpkeKeyAgreement device, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> sealedKey, string modelId, string version, string keyId, string subject, DateTimeOffset leaseExpiresAt)
    {
        byte[] key = Hpke.Open(device, enc, Info(modelId, version, keyId, subject), Aad(leaseExpiresAt), sealedKey);
        try
        {
            return key.Length == ModelKey.SizeInBytes ? ModelKey.Import(key, keyId) : throw new HpkeOpenException();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}
