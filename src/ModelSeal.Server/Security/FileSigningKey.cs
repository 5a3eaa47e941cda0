using System.Security.Cryptography;
using System.Text;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

namespace ModelSeal.Server.Security;

/// <summary>A signing key kept as an owner-only PKCS#8 PEM file in the data directory, created at first start.</summary>
internal sealed class FileSigningKey : ISigningKey
{
    private readonly ECDsa _key;

    private FileSigningKey(ECDsa key, string path)
    {
        _key = key;
        PublicParameters = key.ExportParameters(includePrivateParameters: false);
        KeyId = SigningKeys.KeyIdOf(PublicParameters);
        Description = $"file {path}";
    }

    /// <inheritdoc/>
    public string KeyId { get; }

    /// <inheritdoc/>
    public ECParameters PublicParameters { get; }

    /// <inheritdoc/>
    public string Description { get; }

    /// <inheritdoc/>
    public byte[] SignHash(ReadOnlySpan<byte> sha256) => _key.SignHash(sha256.ToArray(), DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    /// <summary>Loads the key at <paramref name="path"/>, creating it when absent; <paramref name="what"/> names it in errors.</summary>
    /// <exception cref="ServerConfigurationException">The file is not a P-256 private key in PEM.</exception>
    public static FileSigningKey LoadOrCreate(string path, string what)
    {
        var key = ECDsa.Create();
        try
        {
            if (File.Exists(path))
            {
                byte[] pem = DataDirectory.ReadSecretFile(path);
                char[] text = Encoding.ASCII.GetChars(pem);
                try
                {
                    key.ImportFromPem(text);
                }
                catch (Exception e) when (e is ArgumentException or CryptographicException)
                {
                    throw new ServerConfigurationException($"The {what} '{path}' is not a PEM private key; delete it to have a new one created at the next start.", e);
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(pem);
                    Array.Clear(text);
                }

                if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid?.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
                {
                    throw new ServerConfigurationException($"The {what} '{path}' is not a P-256 key; delete it to have a new one created at the next start.");
                }
            }
            else
            {
                key.GenerateKey(ECCurve.NamedCurves.nistP256);
                char[] text = key.ExportPkcs8PrivateKeyPem().ToCharArray();
                byte[] pem = Encoding.ASCII.GetBytes(text);
                try
                {
                    DataDirectory.WriteSecretFile(path, pem, overwrite: false);
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(pem);
                    Array.Clear(text);
                }
            }

            return new FileSigningKey(key, path);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    public void Dispose() => _key.Dispose();
}
