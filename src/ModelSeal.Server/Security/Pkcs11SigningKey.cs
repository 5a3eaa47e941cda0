using System.Security.Cryptography;
using System.Text;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.MasterKeys;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace ModelSeal.Server.Security;

/// <summary>
/// A P-256 signing key inside the PKCS#11 token that holds the master keys: a key pair generated in the token
/// (<c>CKM_EC_KEY_PAIR_GEN</c>) whose private half is a sensitive, non-extractable private token object that only
/// signs (<c>CKM_ECDSA</c> over the SHA-256 digest). Labelled <c>&lt;KeyLabel&gt;-token-signing</c> or
/// <c>&lt;KeyLabel&gt;-answer-signing</c> (docs/deploy.md); created at first start, and on later starts accepted only
/// when the private key was generated in the token and never left it (<see cref="Pkcs11Token.RequiredTrue"/>).
/// </summary>
internal sealed class Pkcs11SigningKey : ISigningKey
{
    /// <summary>The DER encoding of the OID prime256v1 (1.2.840.10045.3.1.7): CKA_EC_PARAMS of a P-256 key.</summary>
    private static readonly byte[] P256Parameters = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

    private const int CoordinateSize = 32;

    private readonly Pkcs11Token _token;
    private readonly IObjectHandle _private;
    private bool _disposed;

    private Pkcs11SigningKey(Pkcs11Token token, IObjectHandle privateKey, ECParameters publicParameters, string label)
    {
        _token = token;
        _private = privateKey;
        PublicParameters = publicParameters;
        KeyId = SigningKeys.KeyIdOf(publicParameters);
        Description = $"pkcs11 token '{token.Label}' key '{label}'";
    }

    /// <inheritdoc/>
    public string KeyId { get; }

    /// <inheritdoc/>
    public ECParameters PublicParameters { get; }

    /// <inheritdoc/>
    public string Description { get; }

    /// <summary>The label of the token-signing key pair.</summary>
    public static string TokenKeyLabel(string keyLabel) => keyLabel + "-token-signing";

    /// <summary>The label of the answer-signing key pair.</summary>
    public static string AnswerKeyLabel(string keyLabel) => keyLabel + "-answer-signing";

    /// <summary>
    /// Finds the key pair labelled <paramref name="label"/> in <paramref name="token"/>, generating it there when
    /// absent and <paramref name="mayCreate"/>; checks that its private key was generated in the token and never
    /// left it, and that it signs what its public key verifies. Takes a reference to the token of its own.
    /// </summary>
    /// <exception cref="ServerConfigurationException">The key pair is missing, duplicated, planted or unusable.</exception>
    public static Pkcs11SigningKey Open(Pkcs11Token token, string label, bool mayCreate)
    {
        ArgumentNullException.ThrowIfNull(token);
        ArgumentNullException.ThrowIfNull(label);
        (IObjectHandle privateKey, IObjectHandle publicKey) = FindOrCreate(token, label, mayCreate);
        ECParameters parameters = token.Use(session => Check(token, session, label, privateKey, publicKey));
        var key = new Pkcs11SigningKey(token.AddReference(), privateKey, parameters, label);
        try
        {
            // The pair must match: a public key object planted under the label would publish a key that verifies nothing.
            byte[] probe = RandomNumberGenerator.GetBytes(32);
            using ECDsa verifier = ECDsa.Create(parameters);
            if (!verifier.VerifyHash(probe, key.SignHash(probe), DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
            {
                throw new ServerConfigurationException($"The public key '{label}' in the PKCS#11 token '{token.Label}' does not verify what its private key signs; remove both and let the server generate a new pair.");
            }

            return key;
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public byte[] SignHash(ReadOnlySpan<byte> sha256)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (sha256.Length != 32)
        {
            throw new CryptographicException("An ES256 signature is over a 32-byte SHA-256 digest.");
        }

        byte[] digest = sha256.ToArray();
        byte[] signature = _token.Use(session =>
        {
            using IMechanism ecdsa = _token.Module.Factories.MechanismFactory.Create(CKM.CKM_ECDSA);
            return session.Sign(ecdsa, _private, digest);
        });
        return signature.Length == 2 * CoordinateSize
            ? signature
            : throw new CryptographicException($"The PKCS#11 token returned a {signature.Length}-byte ECDSA signature; a P-256 signature is {2 * CoordinateSize} bytes (r || s).");
    }

    /// <summary>The 65-byte uncompressed point from CKA_EC_POINT: DER OCTET STRING around 04 || X || Y (PKCS#11), or the bare point (some tokens).</summary>
    /// <returns>The point, or null when it is neither.</returns>
    internal static byte[]? UncompressedPoint(byte[] ecPoint)
    {
        ArgumentNullException.ThrowIfNull(ecPoint);
        const int Size = 1 + (2 * CoordinateSize);
        if (ecPoint.Length == Size + 2 && ecPoint[0] == 0x04 && ecPoint[1] == Size && ecPoint[2] == 0x04)
        {
            return ecPoint[2..];
        }

        return ecPoint.Length == Size && ecPoint[0] == 0x04 ? ecPoint : null;
    }

    /// <summary>Releases this key's reference to the token (the key pair stays in the token).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _token.Dispose();
    }

    private static (IObjectHandle Private, IObjectHandle Public) FindOrCreate(Pkcs11Token token, string label, bool mayCreate) => token.UseLocked(session =>
    {
        IObjectAttributeFactory a = token.Module.Factories.ObjectAttributeFactory;
        List<IObjectHandle> privateKeys = session.FindAllObjects([a.Create(CKA.CKA_CLASS, CKO.CKO_PRIVATE_KEY), a.Create(CKA.CKA_LABEL, label)]);
        List<IObjectHandle> publicKeys = session.FindAllObjects([a.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), a.Create(CKA.CKA_LABEL, label)]);
        if (privateKeys.Count > 1 || publicKeys.Count > 1)
        {
            throw new ServerConfigurationException($"The PKCS#11 token '{token.Label}' holds more than one key labelled '{label}'; remove the ones the server did not generate (docs/deploy.md).");
        }

        if (privateKeys.Count == 1 && publicKeys.Count == 1)
        {
            return (privateKeys[0], publicKeys[0]);
        }

        if (privateKeys.Count + publicKeys.Count > 0)
        {
            throw new ServerConfigurationException($"The PKCS#11 token '{token.Label}' holds only the {(privateKeys.Count == 1 ? "private" : "public")} key of the pair '{label}'; remove it and let the server generate a new pair.");
        }

        if (!mayCreate)
        {
            throw new ServerConfigurationException($"The PKCS#11 token '{token.Label}' holds no signing key labelled '{label}' and MasterKey:CreateIfMissing is false; check MasterKey:TokenLabel and MasterKey:KeyLabel, or allow the server to generate it.");
        }

        byte[] id = Encoding.UTF8.GetBytes(label);
        List<IObjectAttribute> publicTemplate =
        [
            a.Create(CKA.CKA_TOKEN, true),
            a.Create(CKA.CKA_PRIVATE, false),
            a.Create(CKA.CKA_MODIFIABLE, false),
            a.Create(CKA.CKA_VERIFY, true),
            a.Create(CKA.CKA_EC_PARAMS, P256Parameters),
            a.Create(CKA.CKA_LABEL, label),
            a.Create(CKA.CKA_ID, id),
        ];
        List<IObjectAttribute> privateTemplate =
        [
            a.Create(CKA.CKA_TOKEN, true),
            a.Create(CKA.CKA_PRIVATE, true),
            a.Create(CKA.CKA_SENSITIVE, true),
            a.Create(CKA.CKA_EXTRACTABLE, false),
            a.Create(CKA.CKA_MODIFIABLE, false),
            a.Create(CKA.CKA_SIGN, true),
            a.Create(CKA.CKA_DERIVE, false),
            a.Create(CKA.CKA_LABEL, label),
            a.Create(CKA.CKA_ID, id),
        ];
        using IMechanism generate = token.Module.Factories.MechanismFactory.Create(CKM.CKM_EC_KEY_PAIR_GEN);
        session.GenerateKeyPair(generate, publicTemplate, privateTemplate, out IObjectHandle publicKey, out IObjectHandle privateKey);
        return (privateKey, publicKey);
    });

    private static ECParameters Check(Pkcs11Token token, ISession session, string label, IObjectHandle privateKey, IObjectHandle publicKey)
    {
        string[] missing = Pkcs11Token.MissingProtections(session, privateKey);
        if (missing.Length > 0)
        {
            throw new ServerConfigurationException($"The signing key '{label}' in the PKCS#11 token '{token.Label}' lacks {string.Join(", ", missing)}: it was not generated inside the token as a sensitive, never-extractable private token object (an imported key is known to whoever imported it). Remove the key pair; the server generates its own signing keys (docs/deploy.md).");
        }

        List<IObjectAttribute> read = session.GetAttributeValue(privateKey, [CKA.CKA_KEY_TYPE, CKA.CKA_EC_PARAMS, CKA.CKA_SIGN]);
        if (read[0].CannotBeRead || read[0].GetValueAsUlong() != (ulong)CKK.CKK_EC || read[1].CannotBeRead || !read[1].GetValueAsByteArray().AsSpan().SequenceEqual(P256Parameters))
        {
            throw new ServerConfigurationException($"The signing key '{label}' in the PKCS#11 token '{token.Label}' is not a P-256 (prime256v1) EC key; remove the key pair and let the server generate a new one.");
        }

        if (read[2].CannotBeRead || !read[2].GetValueAsBool())
        {
            throw new ServerConfigurationException($"The signing key '{label}' in the PKCS#11 token '{token.Label}' may not sign (CKA_SIGN is false); remove the key pair and let the server generate a new one.");
        }

        List<IObjectAttribute> point = session.GetAttributeValue(publicKey, [CKA.CKA_EC_POINT]);
        byte[]? q = point[0].CannotBeRead ? null : UncompressedPoint(point[0].GetValueAsByteArray());
        if (q is null)
        {
            throw new ServerConfigurationException($"The public key '{label}' in the PKCS#11 token '{token.Label}' has no uncompressed P-256 point (CKA_EC_POINT); remove the key pair and let the server generate a new one.");
        }

        return new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = q[1..(1 + CoordinateSize)], Y = q[(1 + CoordinateSize)..] },
        };
    }
}
