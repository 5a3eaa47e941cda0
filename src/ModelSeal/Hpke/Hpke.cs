using System.Security.Cryptography;

namespace ModelSeal.Hpke;

/// <summary>
/// HPKE (RFC 9180) base mode with DHKEM(P-256, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM, composed from the BCL's
/// <see cref="ECDiffieHellman"/>, <see cref="HKDF"/> and <see cref="AesGcm"/>. Single-shot: one message per
/// encapsulation, which is how ModelSeal seals a data key to a device.
/// </summary>
public static class Hpke
{
    /// <summary>Size of the encapsulated key <c>enc</c>: an uncompressed P-256 point.</summary>
    public const int EncapsulatedKeySize = HpkeSuite.PublicKeySize;

    /// <summary>Bytes the ciphertext adds to the plaintext (the AES-GCM tag).</summary>
    public const int Overhead = HpkeSuite.TagSize;

    /// <summary>
    /// Encrypts <paramref name="plaintext"/> to <paramref name="recipient"/>. Seal to one <see cref="HpkePublicKey"/>
    /// instance many times, also concurrently: its import into the platform's ECDH happens once.
    /// </summary>
    /// <returns>The encapsulated key (<see cref="EncapsulatedKeySize"/> bytes) and the ciphertext
    /// (<see cref="Overhead"/> bytes longer than the plaintext).</returns>
    public static (byte[] Enc, byte[] Ciphertext) Seal(HpkePublicKey recipient, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext)
    {
        ArgumentNullException.ThrowIfNull(recipient);
        using HpkeContext context = SetupBaseSender(recipient, info, ephemeralIkm: default, out byte[] enc);
        return (enc, context.Seal(aad, plaintext));
    }

    /// <summary>
    /// Decrypts what <see cref="Seal"/> produced for this recipient. The private key is used only through
    /// <paramref name="recipient"/>'s key agreement, called once, with <paramref name="enc"/> after it has been
    /// validated as a P-256 point.
    /// </summary>
    /// <exception cref="HpkeOpenException">Not sealed to this key with this info and aad, or altered (an invalid
    /// <paramref name="enc"/> included: the key agreement is then not called).</exception>
    /// <remarks>Exceptions of <see cref="IHpkeKeyAgreement.DeriveSharedSecret"/> (a failing key) pass through unchanged.</remarks>
    public static byte[] Open(IHpkeKeyAgreement recipient, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext)
    {
        ArgumentNullException.ThrowIfNull(recipient);
        using HpkeContext context = SetupBaseRecipient(enc, recipient, info);
        return context.Open(aad, ciphertext);
    }

    /// <summary>
    /// SetupBaseS. With <paramref name="ephemeralIkm"/> (tests only) the ephemeral key is derived from it
    /// (DeriveKeyPair), otherwise generated at random.
    /// </summary>
    internal static HpkeContext SetupBaseSender(HpkePublicKey recipient, ReadOnlySpan<byte> info, ReadOnlySpan<byte> ephemeralIkm, out byte[] enc)
    {
        using HpkeKeyPair ephemeral = ephemeralIkm.IsEmpty ? HpkeKeyPair.Generate() : HpkeKeyPair.Derive(ephemeralIkm);
        enc = ephemeral.PublicKey.Encoded.ToArray();
        byte[] dh = ephemeral.Key.DeriveRawSecretAgreement(recipient.DhPublicKey);
        try
        {
            return KeySchedule(dh, enc, recipient.Encoded.Span, info);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dh);
        }
    }

    /// <summary>
    /// SetupBaseR, with Decap(enc, skR) as: validate enc as a P-256 point, dh = DH(skR, enc) by the recipient's key
    /// agreement, kem_context = enc || pkR, then ExtractAndExpand.
    /// </summary>
    /// <exception cref="HpkeOpenException">The encapsulated key is not a valid P-256 point.</exception>
    internal static HpkeContext SetupBaseRecipient(ReadOnlySpan<byte> enc, IHpkeKeyAgreement recipient, ReadOnlySpan<byte> info)
    {
        if (!HpkePublicKey.IsValidPoint(enc))
        {
            throw new HpkeOpenException();
        }

        Span<byte> dh = stackalloc byte[HpkeSuite.DhSize];
        try
        {
            recipient.DeriveSharedSecret(HpkePublicKey.FromValidPoint(enc), dh);
            return KeySchedule(dh, enc, recipient.PublicKey.Encoded.Span, info);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dh);
        }
    }

    /// <summary>Encap/Decap's ExtractAndExpand, then the base-mode key schedule. The caller zeroes <paramref name="dh"/>.</summary>
    private static HpkeContext KeySchedule(ReadOnlySpan<byte> dh, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info)
    {
        Span<byte> prk = stackalloc byte[HpkeSuite.HashSize];
        Span<byte> sharedSecret = stackalloc byte[HpkeSuite.SecretSize];
        Span<byte> context = stackalloc byte[1 + (2 * HpkeSuite.HashSize)];
        Span<byte> secret = stackalloc byte[HpkeSuite.HashSize];
        byte[] kemContext = [.. enc, .. recipientPublicKey];
        try
        {
            HpkeSuite.LabeledExtract(HpkeSuite.KemSuiteId, [], "eae_prk"u8, dh, prk);
            HpkeSuite.LabeledExpand(HpkeSuite.KemSuiteId, prk, "shared_secret"u8, kemContext, sharedSecret);

            context[0] = 0x00; // mode_base
            HpkeSuite.LabeledExtract(HpkeSuite.HpkeSuiteId, [], "psk_id_hash"u8, [], context.Slice(1, HpkeSuite.HashSize));
            HpkeSuite.LabeledExtract(HpkeSuite.HpkeSuiteId, [], "info_hash"u8, info, context.Slice(1 + HpkeSuite.HashSize, HpkeSuite.HashSize));
            HpkeSuite.LabeledExtract(HpkeSuite.HpkeSuiteId, sharedSecret, "secret"u8, [], secret);
            return new HpkeContext(secret, context);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
            CryptographicOperations.ZeroMemory(sharedSecret);
            CryptographicOperations.ZeroMemory(secret);
        }
    }
}

/// <summary>An HPKE encryption context: AEAD key, base nonce, sequence number and exporter secret, zeroed on dispose.</summary>
internal sealed class HpkeContext : IDisposable
{
    private readonly byte[] _secrets = GC.AllocateArray<byte>(HpkeSuite.KeySize + HpkeSuite.NonceSize + HpkeSuite.HashSize, pinned: true);
    private readonly AesGcm _aead;
    private ulong _sequence;

    public HpkeContext(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> keyScheduleContext)
    {
        HpkeSuite.LabeledExpand(HpkeSuite.HpkeSuiteId, secret, "key"u8, keyScheduleContext, Key);
        HpkeSuite.LabeledExpand(HpkeSuite.HpkeSuiteId, secret, "base_nonce"u8, keyScheduleContext, BaseNonce);
        HpkeSuite.LabeledExpand(HpkeSuite.HpkeSuiteId, secret, "exp"u8, keyScheduleContext, ExporterSecret);
        _aead = new AesGcm(Key, HpkeSuite.TagSize);
    }

    internal Span<byte> Key => _secrets.AsSpan(0, HpkeSuite.KeySize);

    internal Span<byte> BaseNonce => _secrets.AsSpan(HpkeSuite.KeySize, HpkeSuite.NonceSize);

    internal Span<byte> ExporterSecret => _secrets.AsSpan(HpkeSuite.KeySize + HpkeSuite.NonceSize, HpkeSuite.HashSize);

    public byte[] Seal(ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext)
    {
        byte[] ciphertext = new byte[plaintext.Length + HpkeSuite.TagSize];
        Span<byte> nonce = stackalloc byte[HpkeSuite.NonceSize];
        NextNonce(nonce);
        _aead.Encrypt(nonce, plaintext, ciphertext.AsSpan(0, plaintext.Length), ciphertext.AsSpan(plaintext.Length), aad);
        return ciphertext;
    }

    public byte[] Open(ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext)
    {
        if (ciphertext.Length < HpkeSuite.TagSize)
        {
            throw new HpkeOpenException();
        }

        byte[] plaintext = GC.AllocateArray<byte>(ciphertext.Length - HpkeSuite.TagSize, pinned: true);
        Span<byte> nonce = stackalloc byte[HpkeSuite.NonceSize];
        NextNonce(nonce);
        try
        {
            _aead.Decrypt(nonce, ciphertext[..plaintext.Length], ciphertext[plaintext.Length..], plaintext, aad);
            return plaintext;
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new HpkeOpenException();
        }
    }

    /// <summary>Export(exporter_context, L) = LabeledExpand(exporter_secret, "sec", exporter_context, L).</summary>
    public byte[] Export(ReadOnlySpan<byte> exporterContext, int length)
    {
        byte[] output = new byte[length];
        HpkeSuite.LabeledExpand(HpkeSuite.HpkeSuiteId, ExporterSecret, "sec"u8, exporterContext, output);
        return output;
    }

    public void Dispose()
    {
        _aead.Dispose();
        CryptographicOperations.ZeroMemory(_secrets);
    }

    /// <summary>base_nonce XOR I2OSP(seq, 12), then seq += 1 (overflow is an error).</summary>
    private void NextNonce(Span<byte> nonce)
    {
        if (_sequence == ulong.MaxValue)
        {
            throw new CryptographicException("The HPKE context's message limit is reached.");
        }

        BaseNonce.CopyTo(nonce);
        for (int i = 0; i < 8; i++)
        {
            nonce[HpkeSuite.NonceSize - 1 - i] ^= (byte)(_sequence >> (8 * i));
        }

        _sequence++;
    }
}
