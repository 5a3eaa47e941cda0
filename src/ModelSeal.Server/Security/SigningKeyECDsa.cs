using System.Security.Cryptography;

namespace ModelSeal.Server.Security;

/// <summary>
/// An <see cref="ECDsa"/> that signs through an <see cref="ISigningKey"/> (so JWT libraries can use a key that lives
/// in a PKCS#11 token) and verifies with its public key. It never holds or exports private parameters.
/// </summary>
internal sealed class SigningKeyECDsa : ECDsa
{
    private readonly ISigningKey _key;
    private readonly ECDsa _public;

    public SigningKeyECDsa(ISigningKey key)
    {
        _key = key;
        _public = ECDsa.Create(key.PublicParameters);
        KeySizeValue = 256;
        LegalKeySizesValue = [new KeySizes(256, 256, 0)];
    }

    public override byte[] SignHash(byte[] hash)
    {
        ArgumentNullException.ThrowIfNull(hash);
        return _key.SignHash(hash);
    }

    public override bool VerifyHash(byte[] hash, byte[] signature) => _public.VerifyHash(hash, signature);

    public override ECParameters ExportParameters(bool includePrivateParameters) =>
        includePrivateParameters
            ? throw new CryptographicException("The private key of a signing key cannot be exported.")
            : _key.PublicParameters;

    public override ECParameters ExportExplicitParameters(bool includePrivateParameters) =>
        includePrivateParameters
            ? throw new CryptographicException("The private key of a signing key cannot be exported.")
            : _public.ExportExplicitParameters(false);

    public override void ImportParameters(ECParameters parameters) =>
        throw new NotSupportedException("A signing key's parameters are fixed.");

    public override void GenerateKey(ECCurve curve) =>
        throw new NotSupportedException("A signing key's parameters are fixed.");

    protected override byte[] HashData(byte[] data, int offset, int count, HashAlgorithmName hashAlgorithm) =>
        hashAlgorithm == HashAlgorithmName.SHA256
            ? SHA256.HashData(data.AsSpan(offset, count))
            : throw new CryptographicException("ES256 signing keys hash with SHA-256 only.");

    protected override byte[] HashData(Stream data, HashAlgorithmName hashAlgorithm) =>
        hashAlgorithm == HashAlgorithmName.SHA256
            ? SHA256.HashData(data)
            : throw new CryptographicException("ES256 signing keys hash with SHA-256 only.");

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _public.Dispose();
        }

        base.Dispose(disposing);
    }
}
