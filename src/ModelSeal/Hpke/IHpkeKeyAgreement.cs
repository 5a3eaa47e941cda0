namespace ModelSeal.Hpke;

/// <summary>
/// The recipient's private key as HPKE's DHKEM(P-256, HKDF-SHA256) uses it: its public key, and the Diffie-Hellman
/// step <c>DH(skR, pkE)</c>. <see cref="Hpke.Open"/> and <see cref="KeyRelease.Open"/> reach the private key only
/// through this interface, so it can live where the process cannot read it (a PKCS#11 token, the Android Keystore, the
/// Secure Enclave). <see cref="HpkeKeyPair"/> is the software implementation.
/// </summary>
/// <remarks>
/// Contract for implementations:
/// <list type="bullet">
/// <item><description>The private key is the implementation's own: no member of this interface exposes it, and an
/// implementation must not either (not in exceptions, logs or <see cref="object.ToString"/>).</description></item>
/// <item><description><see cref="PublicKey"/> is the public key of that private key, the same for the implementation's
/// whole lifetime.</description></item>
/// <item><description>Thread safety: <see cref="DeriveSharedSecret"/> may be called concurrently (a client opens
/// several released keys with one device key at once); a backend that cannot take concurrent calls (one PKCS#11
/// session) serialises them itself.</description></item>
/// <item><description>Synchronous: a key agreement is one short operation, on a token too (PKCS#11 <c>C_DeriveKey</c>
/// with <c>CKM_ECDH1_DERIVE</c>).</description></item>
/// </list>
/// </remarks>
public interface IHpkeKeyAgreement
{
    /// <summary>The recipient's public key.</summary>
    HpkePublicKey PublicKey { get; }

    /// <summary>
    /// ECDH on P-256 between the private key and <paramref name="peerPublicKey"/>: writes the x-coordinate of the
    /// shared point, 32 bytes big-endian (leading zeros kept), which is DHKEM's <c>DH(skR, pkE)</c>.
    /// </summary>
    /// <param name="peerPublicKey">The peer's (HPKE's ephemeral) public key, a point validated by
    /// <see cref="HpkePublicKey"/> (length, 0x04 prefix, coordinates below the field prime, on the curve); its
    /// <see cref="HpkePublicKey.Encoded"/> bytes are what a token's ECDH takes.</param>
    /// <param name="sharedSecret">Exactly 32 bytes, receives the shared secret. The caller zeroes it after use; an
    /// implementation zeroes any copy of its own.</param>
    /// <exception cref="ArgumentException"><paramref name="sharedSecret"/> is not 32 bytes.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="peerPublicKey"/> is null.</exception>
    /// <remarks>
    /// Any other failure (a disposed key, a removed token) is an exception of the implementation's choosing;
    /// <see cref="Hpke.Open"/> lets it through unchanged, because it is a fault of the key, not a message that fails
    /// to open. A wrong result is not detected here: the message then fails to authenticate and
    /// <see cref="Hpke.Open"/> throws <see cref="HpkeOpenException"/>.
    /// </remarks>
    void DeriveSharedSecret(HpkePublicKey peerPublicKey, Span<byte> sharedSecret);
}
