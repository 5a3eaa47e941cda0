namespace ModelSeal.Architecture.Tests;

/// <summary>
/// The packaged libraries keep the platform's cryptography out of their public API: no public or protected signature
/// names a type of System.Security.Cryptography (ECDiffieHellman, ECParameters, …), so that the API does not commit to
/// one implementation and a caller never handles a key object the library should own (issue: one public-key type,
/// <c>HpkePublicKey</c>).
/// </summary>
public sealed class PublicSignatureTests
{
    private const string Cryptography = "System.Security.Cryptography";

    public static TheoryData<string> PackagedAssemblies => [.. Assemblies.Packaged];

    [Theory]
    [MemberData(nameof(PackagedAssemblies))]
    public void No_public_signature_names_a_cryptography_type(string assembly)
    {
        IReadOnlyList<string> mentions = PublicSignatures.Mentioning(Assemblies.PathOf(assembly), Cryptography);

        Assert.True(
            mentions.Count == 0,
            $"{assembly}'s public API names {Cryptography} types; wrap them in a ModelSeal type (as HpkePublicKey wraps the ECDH key) or make the member internal:{Environment.NewLine}{string.Join(Environment.NewLine, mentions.Select(m => $"  {m}"))}");
    }

    [Fact]
    public void Every_packaged_library_is_checked()
    {
        Assert.Equal(["ModelSeal", "ModelSeal.Build", "ModelSeal.Client", "ModelSeal.Client.Pkcs11", "ModelSeal.OnnxRuntime"], Assemblies.Packaged);
    }

    /// <summary>The proof that the check sees each position: tests/ModelSeal.Architecture.Tests.Fixture/CryptoSignatures.cs.</summary>
    [Fact]
    public void Finds_exactly_the_fixture_mentions()
    {
        IReadOnlyList<string> mentions = PublicSignatures.Mentioning(Assemblies.PathOf(Assemblies.Fixture), Cryptography);

        Assert.Equal(
            [
                "Fixture.Crypto.DerivedException (base type): System.Security.Cryptography.CryptographicException",
                "Fixture.Crypto.Members/NestedVisible::Key (property): System.Security.Cryptography.Aes",
                "Fixture.Crypto.Members::Constrained (constraint on T): System.Security.Cryptography.AsymmetricAlgorithm",
                "Fixture.Crypto.Members::Failed (event): System.Security.Cryptography.CryptographicException",
                "Fixture.Crypto.Members::Hash (property): System.Security.Cryptography.HashAlgorithmName",
                "Fixture.Crypto.Members::Item (index parameters): System.Security.Cryptography.ECParameters",
                "Fixture.Crypto.Members::Overridden (parameter curve): System.Security.Cryptography.ECCurve",
                "Fixture.Crypto.Members::Points (field): System.Security.Cryptography.ECPoint",
                "Fixture.Crypto.Members::Returned (return): System.Security.Cryptography.ECDiffieHellman",
                "Fixture.Crypto.Members::Takes (parameter parameters): System.Security.Cryptography.ECParameters",
                "Fixture.Crypto.Transform (interface): System.Security.Cryptography.ICryptoTransform",
            ],
            mentions);
    }
}
