using System.Security.Cryptography;
using ModelSeal.Hpke;
using ModelSeal.Pkcs11;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;
using Net.Pkcs11Interop.HighLevelAPI.MechanismParams;

namespace ModelSeal.Client.Pkcs11;

/// <summary>
/// HPKE's <c>DH(skR, pkE)</c> performed by a PKCS#11 token: <c>C_DeriveKey</c> with <c>CKM_ECDH1_DERIVE</c>
/// (<c>CKD_NULL</c>, the peer's 65-byte point as public data) derives a session-only <c>CKK_GENERIC_SECRET</c> of 32
/// bytes — the x-coordinate of the shared point — which is read, destroyed in the token, and copied out; the managed
/// copy is zeroed. The private key never leaves the token. Thread-safe: each call takes a session of the pool.
/// </summary>
internal sealed class Pkcs11KeyAgreement : IHpkeKeyAgreement
{
    /// <summary>DHKEM(P-256)'s Ndh: the x-coordinate of the shared point.</summary>
    private const int SecretSize = 32;

    private readonly Pkcs11SessionPool _sessions;
    private readonly string _description;

    public Pkcs11KeyAgreement(Pkcs11SessionPool sessions, IObjectHandle privateKey, HpkePublicKey publicKey, string description)
    {
        _sessions = sessions;
        PrivateKey = privateKey;
        PublicKey = publicKey;
        _description = description;
    }

    /// <inheritdoc />
    public HpkePublicKey PublicKey { get; }

    /// <summary>The private key's handle in the token (tests read its attributes).</summary>
    internal IObjectHandle PrivateKey { get; }

    /// <inheritdoc />
    /// <exception cref="Pkcs11DeviceKeyException">The token failed the key agreement.</exception>
    /// <exception cref="ObjectDisposedException">The store was disposed.</exception>
    public void DeriveSharedSecret(HpkePublicKey peerPublicKey, Span<byte> sharedSecret)
    {
        ArgumentNullException.ThrowIfNull(peerPublicKey);
        if (sharedSecret.Length != SecretSize)
        {
            throw new ArgumentException($"The shared secret takes exactly {SecretSize} bytes.", nameof(sharedSecret));
        }

        byte[] value = _sessions.Use(session => Derive(session, peerPublicKey));
        try
        {
            if (value.Length != SecretSize)
            {
                throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.TokenFailure, $"{_description}: the token's ECDH returned {value.Length} bytes instead of {SecretSize}.");
            }

            value.CopyTo(sharedSecret);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(value);
        }
    }

    /// <summary>Names the key and its token, with the public key's thumbprint.</summary>
    public override string ToString() => $"{_description} {{ PublicKey = {PublicKey.Thumbprint} }}";

    /// <summary>
    /// Checks that <see cref="PublicKey"/> belongs to the private key: an ECDH with a fresh software key pair, once in the
    /// token and once in software, must agree.
    /// </summary>
    /// <exception cref="Pkcs11DeviceKeyException">They do not (<see cref="Pkcs11DeviceKeyError.KeyRefused"/>).</exception>
    internal void CheckPair()
    {
        using HpkeKeyPair probe = HpkeKeyPair.Generate();
        byte[] inToken = new byte[SecretSize];
        byte[] inSoftware = new byte[SecretSize];
        try
        {
            DeriveSharedSecret(probe.PublicKey, inToken);
            probe.DeriveSharedSecret(PublicKey, inSoftware);
            if (!CryptographicOperations.FixedTimeEquals(inToken, inSoftware))
            {
                throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.KeyRefused, $"{_description}: the public key beside it in the token (same CKA_ID) is not its public key. Delete both objects to let a new device key be generated (the device then counts as a new device).");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(inToken);
            CryptographicOperations.ZeroMemory(inSoftware);
        }
    }

    private byte[] Derive(ISession session, HpkePublicKey peerPublicKey)
    {
        Pkcs11InteropFactories factories = _sessions.Factories;
        IObjectAttributeFactory a = factories.ObjectAttributeFactory;
        List<IObjectAttribute> template =
        [
            a.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET),
            a.Create(CKA.CKA_VALUE_LEN, (ulong)SecretSize),
            a.Create(CKA.CKA_TOKEN, false),
            a.Create(CKA.CKA_PRIVATE, true),
            a.Create(CKA.CKA_SENSITIVE, false),
            a.Create(CKA.CKA_EXTRACTABLE, true),
        ];
        using ICkEcdh1DeriveParams parameters = factories.MechanismParamsFactory.CreateCkEcdh1DeriveParams((ulong)CKD.CKD_NULL, null, peerPublicKey.Encoded.ToArray());
        using IMechanism mechanism = factories.MechanismFactory.Create(CKM.CKM_ECDH1_DERIVE, parameters);
        IObjectHandle secret = session.DeriveKey(mechanism, PrivateKey, template);
        try
        {
            List<IObjectAttribute> read = session.GetAttributeValue(secret, [CKA.CKA_VALUE]);
            try
            {
                return read[0].CannotBeRead
                    ? throw new Pkcs11DeviceKeyException(Pkcs11DeviceKeyError.TokenFailure, $"{_description}: the token does not let the derived ECDH secret be read (it must allow a non-sensitive, extractable session key from CKM_ECDH1_DERIVE).")
                    : read[0].GetValueAsByteArray();
            }
            finally
            {
                foreach (IObjectAttribute attribute in read)
                {
                    attribute.Dispose();
                }
            }
        }
        finally
        {
            session.DestroyObject(secret);
            foreach (IObjectAttribute attribute in template)
            {
                attribute.Dispose();
            }
        }
    }
}
