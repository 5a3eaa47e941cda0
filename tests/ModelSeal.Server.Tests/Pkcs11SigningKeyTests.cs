using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Protocol;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Endpoints;
using ModelSeal.Server.Files;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ModelSeal.Server.Tests;

/// <summary>
/// With the master keys in a PKCS#11 token, the token-signing and answer-signing keys are key pairs generated in that
/// token that sign there (SoftHSM2 in CI; skipped locally unless MODELSEAL_TEST_PKCS11_* are set): the data directory
/// holds no signing key, so a copy of it and of the database cannot mint an admin token.
/// </summary>
[Trait("Backends", "own")]
public sealed class Pkcs11SigningKeyTests
{
    /// <summary>What the forger asks for: a licence of their own.</summary>
    private static readonly object ForgedLicence = new { subject = "forger", models = new[] { "m" }, maxDevices = 1 };

    private static string NewLabel() => "sig-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    private static MasterKeyOptions Hsm(Pkcs11Token token, string label) => new()
    {
        Provider = MasterKeyOptions.Pkcs11,
        Pkcs11Module = token.Module,
        TokenLabel = token.Label,
        KeyLabel = label,
        PinEnvironmentVariable = Services.Pkcs11PinVariable,
    };

    [Fact]
    public async Task A_copy_of_the_data_directory_and_database_cannot_mint_an_admin_token()
    {
        // The finding: token-signing.key sat in the data directory, and an admin token signed with a copy of it was
        // accepted by the running server, also with the master keys in an HSM. Every private key a copy holds is tried.
        Pkcs11Token token = Services.RequirePkcs11();
        using var directory = new TempDirectory();
        await using TestServer server = await TestServer.StartAsync(o => o.MasterKey = Hsm(token, NewLabel()), directory.Sub("data"));
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");
        (await server.CreateVersionAsync(admin, "m")).Key.Dispose();

        string copy = directory.Sub("copy");
        Directory.CreateDirectory(copy);
        foreach (string file in Directory.GetFiles(server.DataDirectory).Where(f => Path.GetFileName(f) != "modelseal.lock"))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        Assert.Contains("modelseal.db", Directory.GetFiles(copy).Select(Path.GetFileName));
        string[] signingInput = admin.Split('.');
        int tried = 0;
        foreach (string file in Directory.GetFiles(copy))
        {
            using ECDsa? key = PrivateKeyIn(file);
            if (key is null)
            {
                continue;
            }

            tried++;
            byte[] signature = key.SignData(Encoding.ASCII.GetBytes($"{signingInput[0]}.{signingInput[1]}"), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            string forged = $"{signingInput[0]}.{signingInput[1]}.{TestServer.Base64Url(signature)}";
            Secrets.Add("forged admin token", forged);
            (await server.PostAsync("/v1/admin/licences", ForgedLicence, forged)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        }

        Assert.Equal(0, tried);
        Assert.False(File.Exists(Path.Combine(copy, DataDirectory.SigningKeyFile)), "The data directory holds a token-signing key.");
        Assert.False(File.Exists(Path.Combine(copy, DataDirectory.AnswerKeyFile)), "The data directory holds an answer-signing key.");

        // The real token works: the refusals above are about the signature.
        (await server.GetAsync("/v1/admin/models", admin)).AssertStatus(HttpStatusCode.OK);
    }

    [Fact]
    public async Task The_signing_keys_sign_in_the_token_verify_against_the_JWKS_keep_their_kid_and_replace_old_key_files()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        string label = NewLabel();
        using var directory = new TempDirectory();
        string data = directory.Sub("data");

        // An older server's key files (file signing keys, master keys already in the token).
        DataDirectory.Open(data);
        string oldKid;
        using (FileSigningKey old = FileSigningKey.LoadOrCreate(Path.Combine(data, DataDirectory.SigningKeyFile), "token signing key"))
        {
            oldKid = old.KeyId;
        }

        FileSigningKey.LoadOrCreate(Path.Combine(data, DataDirectory.AnswerKeyFile), "answer signing key").Dispose();

        string tokenKid, answerKid;
        await using (TestServer server = await TestServer.StartAsync(o => o.MasterKey = Hsm(token, label), data))
        {
            SigningKeys keys = server.App.Services.GetRequiredService<SigningKeys>();
            Assert.IsType<Pkcs11SigningKey>(keys.Token);
            Assert.IsType<Pkcs11SigningKey>(keys.Answer);
            Assert.Equal($"pkcs11 token '{token.Label}' key '{label}-token-signing'", keys.Token.Description);
            Assert.Equal($"pkcs11 token '{token.Label}' key '{label}-answer-signing'", keys.Answer.Description);
            (tokenKid, answerKid) = (keys.Token.KeyId, keys.Answer.KeyId);
            Assert.NotEqual(oldKid, tokenKid);
            Assert.NotEqual(tokenKid, answerKid);
            Assert.False(File.Exists(Path.Combine(data, DataDirectory.SigningKeyFile)), "The old token-signing.key was not deleted.");
            Assert.False(File.Exists(Path.Combine(data, DataDirectory.AnswerKeyFile)), "The old answer-signing.key was not deleted.");
            Assert.Contains(server.Logs.Lines, line => line.Contains("Deleted", StringComparison.Ordinal) && line.Contains(DataDirectory.SigningKeyFile, StringComparison.Ordinal));

            // A token the server issues verifies with the JWKS key of its kid (an outsider's check), and the answer key
            // signs what its published key verifies.
            string admin = await server.AdminTokenAsync();
            JsonElement jwks = (await server.GetAsync(JwksApi.Path)).Json;
            AssertVerifies(admin, jwks);
            Assert.Equal(tokenKid, Header(admin).GetProperty("kid").GetString());
            byte[] digest = SHA256.HashData("answer"u8);
            using ECDsa answerKey = JwksKey(jwks, answerKid);
            Assert.True(answerKey.VerifyHash(digest, keys.Answer.SignHash(digest), DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
            (await server.GetAsync("/v1/admin/models", admin)).AssertStatus(HttpStatusCode.OK);
        }

        // A restart finds the same key pairs: the same kids, tokens issued before still accepted.
        await using (TestServer server = await TestServer.StartAsync(o => o.MasterKey = Hsm(token, label), data))
        {
            SigningKeys keys = server.App.Services.GetRequiredService<SigningKeys>();
            Assert.Equal((tokenKid, answerKid), (keys.Token.KeyId, keys.Answer.KeyId));
            Assert.Empty(Directory.GetFiles(data, "*.key"));
        }
    }

    [Fact]
    public void The_private_keys_are_generated_in_the_token_and_cannot_be_read()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        string label = NewLabel();
        using var directory = new TempDirectory();
        var options = new ServerOptions { DataDirectory = directory.Sub("data"), MasterKey = Hsm(token, label) };
        using SigningKeys keys = SigningKeys.Open(options, DataDirectory.Open(options.DataDirectory));
        using Pkcs11MasterKeyProvider session = OpenToken(token, label);
        var factories = new Pkcs11InteropFactories();
        foreach ((string name, ISigningKey key) in new[] { (Pkcs11SigningKey.TokenKeyLabel(label), keys.Token), (Pkcs11SigningKey.AnswerKeyLabel(label), keys.Answer) })
        {
            session.Use(s =>
            {
                IObjectHandle privateKey = Assert.Single(s.FindAllObjects([factories.ObjectAttributeFactory.Create(CKA.CKA_CLASS, CKO.CKO_PRIVATE_KEY), factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, name)]));
                CKA[] required = [CKA.CKA_LOCAL, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_PRIVATE, CKA.CKA_TOKEN, CKA.CKA_SENSITIVE, CKA.CKA_SIGN];
                List<IObjectAttribute> flags = s.GetAttributeValue(privateKey, [.. required, CKA.CKA_EXTRACTABLE, CKA.CKA_DERIVE]);
                for (int i = 0; i < required.Length; i++)
                {
                    Assert.True(flags[i].GetValueAsBool(), $"{name}: {required[i]} must be true.");
                }

                Assert.False(flags[required.Length].GetValueAsBool(), $"{name}: CKA_EXTRACTABLE must be false.");
                Assert.False(flags[required.Length + 1].GetValueAsBool(), $"{name}: CKA_DERIVE must be false.");

                // CKA_VALUE, the private scalar: refused (CKR_ATTRIBUTE_SENSITIVE), reported as unreadable or as an error.
                try
                {
                    Assert.True(s.GetAttributeValue(privateKey, [CKA.CKA_VALUE])[0].CannotBeRead, $"{name}: CKA_VALUE was readable.");
                }
                catch (Pkcs11Exception e)
                {
                    Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, e.RV);
                }

                // The public half published is the token's public key object.
                IObjectHandle publicKey = Assert.Single(s.FindAllObjects([factories.ObjectAttributeFactory.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, name)]));
                byte[] point = Pkcs11SigningKey.UncompressedPoint(s.GetAttributeValue(publicKey, [CKA.CKA_EC_POINT])[0].GetValueAsByteArray())!;
                Assert.Equal(SigningKeys.PointOf(key.PublicParameters), point);
                return 0;
            });
        }
    }

    [Fact]
    public void A_signing_key_planted_in_the_token_under_its_label_is_refused()
    {
        // Anyone with the user PIN can import a key pair whose private key they know under the signing key's label,
        // before the server creates its own: CKA_LOCAL and the others tell it was not generated in the token.
        Pkcs11Token token = Services.RequirePkcs11();
        string label = NewLabel();
        string planted = Pkcs11SigningKey.TokenKeyLabel(label);
        using var known = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        ECParameters parameters = known.ExportParameters(includePrivateParameters: true);
        using (Pkcs11MasterKeyProvider session = OpenToken(token, label))
        {
            var factories = new Pkcs11InteropFactories();
            IObjectAttribute Of(CKA type, object value) => value switch
            {
                bool b => factories.ObjectAttributeFactory.Create(type, b),
                ulong u => factories.ObjectAttributeFactory.Create(type, u),
                byte[] bytes => factories.ObjectAttributeFactory.Create(type, bytes),
                _ => factories.ObjectAttributeFactory.Create(type, (string)value),
            };
            byte[] p256 = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
            session.Use(s =>
            {
                s.CreateObject(
                [
                    Of(CKA.CKA_CLASS, (ulong)CKO.CKO_PRIVATE_KEY), Of(CKA.CKA_KEY_TYPE, (ulong)CKK.CKK_EC), Of(CKA.CKA_EC_PARAMS, p256),
                    Of(CKA.CKA_VALUE, parameters.D!), Of(CKA.CKA_LABEL, planted), Of(CKA.CKA_TOKEN, true), Of(CKA.CKA_PRIVATE, true),
                    Of(CKA.CKA_SENSITIVE, true), Of(CKA.CKA_EXTRACTABLE, false), Of(CKA.CKA_SIGN, true),
                ]);
                s.CreateObject(
                [
                    Of(CKA.CKA_CLASS, (ulong)CKO.CKO_PUBLIC_KEY), Of(CKA.CKA_KEY_TYPE, (ulong)CKK.CKK_EC), Of(CKA.CKA_EC_PARAMS, p256),
                    Of(CKA.CKA_EC_POINT, (byte[])[0x04, 0x41, 0x04, .. parameters.Q.X!, .. parameters.Q.Y!]), Of(CKA.CKA_LABEL, planted),
                    Of(CKA.CKA_TOKEN, true), Of(CKA.CKA_VERIFY, true),
                ]);
                return 0;
            });
        }

        using var directory = new TempDirectory();
        var options = new ServerOptions { DataDirectory = directory.Sub("data"), MasterKey = Hsm(token, label) };
        ServerConfigurationException refused = Assert.Throws<ServerConfigurationException>(() => SigningKeys.Open(options, DataDirectory.Open(options.DataDirectory)));
        Assert.Contains($"'{planted}'", refused.Message, StringComparison.Ordinal);
        Assert.Contains("CKA_LOCAL", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Pin, refused.ToString(), StringComparison.Ordinal);

        // The whole server refuses to start on it, saying what to do.
        var server = new ServerOptions { DataDirectory = directory.Sub("server"), MasterKey = Hsm(token, label), AdminCredentialOut = directory.Sub("admin.credential") };
        Assert.Contains("CKA_LOCAL", Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(server)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_permission_to_create_a_missing_signing_key_is_a_configuration_error()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        string label = NewLabel();
        using var directory = new TempDirectory();
        MasterKeyOptions hsm = Hsm(token, label);
        hsm.CreateIfMissing = false;
        var options = new ServerOptions { DataDirectory = directory.Sub("data"), MasterKey = hsm };
        ServerConfigurationException e = Assert.Throws<ServerConfigurationException>(() => SigningKeys.Open(options, DataDirectory.Open(options.DataDirectory)));
        Assert.Contains($"'{Pkcs11SigningKey.TokenKeyLabel(label)}'", e.Message, StringComparison.Ordinal);
        Assert.Contains("CreateIfMissing", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CKA_EC_POINT_is_read_as_a_DER_octet_string_or_as_the_bare_point()
    {
        byte[] point = [0x04, .. Enumerable.Range(1, 64).Select(i => (byte)i)];
        Assert.Equal(point, Pkcs11SigningKey.UncompressedPoint([0x04, 0x41, .. point]));
        Assert.Equal(point, Pkcs11SigningKey.UncompressedPoint(point));
        Assert.Null(Pkcs11SigningKey.UncompressedPoint([0x04, 0x40, .. point[1..]]));
        Assert.Null(Pkcs11SigningKey.UncompressedPoint([0x04, 0x41, 0x02, .. point[1..]]));
        Assert.Null(Pkcs11SigningKey.UncompressedPoint([0x02, .. point[1..33]]));
        Assert.Null(Pkcs11SigningKey.UncompressedPoint([0x04, 0x21, 0x02, .. point[1..33]]));
    }

    /// <summary>A session on the test token (through a master-key provider of its own label).</summary>
    private static Pkcs11MasterKeyProvider OpenToken(Pkcs11Token token, string label) =>
        Pkcs11MasterKeyProvider.Open(token.Module, token.Label, label + "-session", Encoding.UTF8.GetBytes(token.Pin), mayCreate: true);

    private static ECDsa? PrivateKeyIn(string file)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(File.ReadAllText(file));
            return key;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException or DecoderFallbackException)
        {
            key.Dispose();
            return null;
        }
    }

    private static void AssertVerifies(string jwt, JsonElement jwks)
    {
        string[] parts = jwt.Split('.');
        using ECDsa key = JwksKey(jwks, Header(jwt).GetProperty("kid").GetString()!);
        Assert.Equal(PublicJwk.TokenPurpose, jwks.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("kid").GetString() == Header(jwt).GetProperty("kid").GetString()).GetProperty("purpose").GetString());
        Assert.True(key.VerifyData(Encoding.ASCII.GetBytes($"{parts[0]}.{parts[1]}"), System.Buffers.Text.Base64Url.DecodeFromChars(parts[2]), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation), "The token does not verify with its JWKS key.");
    }

    private static ECDsa JwksKey(JsonElement jwks, string kid)
    {
        JsonElement jwk = jwks.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("kid").GetString() == kid);
        return ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = System.Buffers.Text.Base64Url.DecodeFromChars(jwk.GetProperty("x").GetString()), Y = System.Buffers.Text.Base64Url.DecodeFromChars(jwk.GetProperty("y").GetString()) },
        });
    }

    private static JsonElement Header(string jwt) => JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(jwt.Split('.')[0])).RootElement.Clone();
}
