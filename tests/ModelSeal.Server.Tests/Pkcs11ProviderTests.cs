using System.Net;
using System.Security.Cryptography;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The PKCS#11 master-key provider against a real token (SoftHSM2 in CI: .ci/run; skipped locally unless
/// MODELSEAL_TEST_PKCS11_* are set). Every test uses its own key label, so tests run in parallel on one token.
/// </summary>
[Trait("Backends", "own")]
public sealed class Pkcs11ProviderTests
{
    private static string NewLabel() => "test-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    private static Pkcs11MasterKeyProvider Open(Pkcs11Token token, string label, bool mayCreate = true) =>
        Pkcs11MasterKeyProvider.Open(token.Module, token.Label, label, System.Text.Encoding.UTF8.GetBytes(token.Pin), mayCreate);

    [Fact]
    public void A_data_key_wrapped_in_the_token_unwraps_to_the_same_bytes()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        string label = NewLabel();
        using var ring = new MasterKeyRing(Open(token, label));
        Assert.Equal(1, ring.CurrentVersion);
        byte[] dataKey = RandomNumberGenerator.GetBytes(ModelKey.SizeInBytes);

        (int version, byte[] wrapped) = ring.Wrap(dataKey, "classifier.1.0a1b2c3d");
        Assert.Equal(1, version);
        Assert.Equal(MasterKeyRing.WrappedSize, wrapped.Length);
        Assert.False(wrapped.AsSpan().IndexOf(dataKey) >= 0, "The wrapped bytes contain the data key.");

        byte[] unwrapped = new byte[ModelKey.SizeInBytes];
        ring.Unwrap(version, wrapped, "classifier.1.0a1b2c3d", unwrapped);
        Assert.Equal(dataKey, unwrapped);

        // A fresh IV each time: wrapping twice gives different bytes.
        Assert.NotEqual(wrapped, ring.Wrap(dataKey, "classifier.1.0a1b2c3d").Wrapped);

        // The key persists in the token: a second provider (a restarted server) finds v1 and unwraps.
        using var reopened = new MasterKeyRing(Open(token, label, mayCreate: false));
        Assert.Equal(1, reopened.CurrentVersion);
        Array.Clear(unwrapped);
        reopened.Unwrap(version, wrapped, "classifier.1.0a1b2c3d", unwrapped);
        Assert.Equal(dataKey, unwrapped);
    }

    [Fact]
    public void A_wrapped_key_does_not_unwrap_under_another_key_id_or_when_altered()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        using var ring = new MasterKeyRing(Open(token, NewLabel()));
        byte[] dataKey = RandomNumberGenerator.GetBytes(ModelKey.SizeInBytes);
        (int version, byte[] wrapped) = ring.Wrap(dataKey, "model.1.aaaaaaaa");
        byte[] output = new byte[ModelKey.SizeInBytes];

        Assert.Throws<AuthenticationTagMismatchException>(() => ring.Unwrap(version, wrapped, "model.1.bbbbbbbb", output));
        Assert.All(output, b => Assert.Equal(0, b));

        foreach (int position in new[] { 0, MasterKeyRing.NonceSize, MasterKeyRing.WrappedSize - 1 })
        {
            byte[] altered = (byte[])wrapped.Clone();
            altered[position] ^= 1;
            Assert.Throws<AuthenticationTagMismatchException>(() => ring.Unwrap(version, altered, "model.1.aaaaaaaa", output));
        }

        Assert.Throws<CryptographicException>(() => ring.Unwrap(version + 1, wrapped, "model.1.aaaaaaaa", output));
    }

    [Fact]
    public void Rotation_adds_a_version_and_keys_wrapped_with_the_old_one_still_unwrap()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        string label = NewLabel();
        using var ring = new MasterKeyRing(Open(token, label));
        byte[] dataKey = RandomNumberGenerator.GetBytes(ModelKey.SizeInBytes);
        (int oldVersion, byte[] oldWrapped) = ring.Wrap(dataKey, "k");

        Assert.Equal(2, ring.AddVersion());
        Assert.Equal(2, ring.CurrentVersion);
        (int newVersion, byte[] newWrapped) = ring.Wrap(dataKey, "k");
        Assert.Equal(2, newVersion);

        byte[] output = new byte[ModelKey.SizeInBytes];
        ring.Unwrap(oldVersion, oldWrapped, "k", output);
        Assert.Equal(dataKey, output);
        ring.Unwrap(newVersion, newWrapped, "k", output);
        Assert.Equal(dataKey, output);

        // v1's bytes do not open under v2 (different keys), and a restart finds both, v2 current.
        Assert.ThrowsAny<CryptographicException>(() => ring.Unwrap(2, oldWrapped, "k", output));
        using var reopened = new MasterKeyRing(Open(token, label, mayCreate: false));
        Assert.Equal(2, reopened.CurrentVersion);
        reopened.Unwrap(oldVersion, oldWrapped, "k", output);
        Assert.Equal(dataKey, output);
    }

    [Fact]
    public void The_master_key_is_sensitive_and_cannot_be_read_or_wrapped_out_of_the_token()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        using Pkcs11MasterKeyProvider provider = Open(token, NewLabel());
        IObjectHandle master = provider.Handle(1);
        var factories = new Pkcs11InteropFactories();

        provider.Use(session =>
        {
            List<IObjectAttribute> flags = session.GetAttributeValue(master, [CKA.CKA_EXTRACTABLE, CKA.CKA_SENSITIVE, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_TOKEN, CKA.CKA_VALUE_LEN]);
            Assert.False(flags[0].GetValueAsBool(), "CKA_EXTRACTABLE must be false.");
            Assert.True(flags[1].GetValueAsBool(), "CKA_SENSITIVE must be true.");
            Assert.True(flags[2].GetValueAsBool(), "CKA_NEVER_EXTRACTABLE must be true (generated inside the token).");
            Assert.True(flags[3].GetValueAsBool(), "CKA_ALWAYS_SENSITIVE must be true.");
            Assert.True(flags[4].GetValueAsBool(), "The key must be a token object (it survives restarts).");
            Assert.Equal(32UL, flags[5].GetValueAsUlong());

            // CKA_VALUE: the token refuses it (CKR_ATTRIBUTE_SENSITIVE), reported as unreadable or as an error.
            try
            {
                List<IObjectAttribute> value = session.GetAttributeValue(master, [CKA.CKA_VALUE]);
                Assert.True(value[0].CannotBeRead, "CKA_VALUE of the master key was readable.");
            }
            catch (Pkcs11Exception e)
            {
                Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, e.RV);
            }

            // Wrapping it out with another key the token holds fails: CKA_EXTRACTABLE is false.
            IObjectAttributeFactoryShortcut a = new(factories);
            IObjectHandle wrapping = session.GenerateKey(
                factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN),
                [a.Of(CKA.CKA_CLASS, (ulong)CKO.CKO_SECRET_KEY), a.Of(CKA.CKA_KEY_TYPE, (ulong)CKK.CKK_AES), a.Of(CKA.CKA_VALUE_LEN, 32UL), a.Of(CKA.CKA_TOKEN, false), a.Of(CKA.CKA_WRAP, true), a.Of(CKA.CKA_ENCRYPT, true)]);
            try
            {
                Pkcs11Exception refused = Assert.Throws<Pkcs11Exception>(() => session.WrapKey(factories.MechanismFactory.Create(CKM.CKM_AES_KEY_WRAP_PAD), wrapping, master));
                Assert.Equal(CKR.CKR_KEY_UNEXTRACTABLE, refused.RV);
                using IMechanism gcm = factories.MechanismFactory.Create(CKM.CKM_AES_GCM, factories.MechanismParamsFactory.CreateCkGcmParams(new byte[12], 96, [], 128));
                Assert.Throws<Pkcs11Exception>(() => session.WrapKey(gcm, wrapping, master));
            }
            finally
            {
                session.DestroyObject(wrapping);
            }

            return 0;
        });
    }

    [Fact]
    public async Task A_server_with_the_pkcs11_provider_releases_a_key_end_to_end_and_rotates()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        string pinVariable = "MODELSEAL_TEST_PKCS11_PIN";
        string label = NewLabel();
        await using TestServer server = await TestServer.StartAsync(o => o.MasterKey = new MasterKeyOptions
        {
            Provider = MasterKeyOptions.Pkcs11,
            Pkcs11Module = token.Module,
            TokenLabel = token.Label,
            KeyLabel = label,
            PinEnvironmentVariable = pinVariable,
        });
        Assert.False(File.Exists(Path.Combine(server.DataDirectory, "master.keys")), "The PKCS#11 provider wrote a master.keys file.");

        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "classifier");
        (Release created, ModelKey publisherKey) = await server.CreateVersionAsync(admin, "classifier");
        using ModelKey publisherKeyScope = publisherKey;
        Licence licence = await server.CreateLicenceAsync(admin, "customer-hsm", ["classifier"]);
        string licenceToken = await server.LicenceTokenAsync(licence);
        using HpkeKeyPair device = HpkeKeyPair.Generate();

        (Release released, ModelKey releasedKey) = await server.ReleaseAndOpenAsync(licenceToken, licence, "classifier", created.Version, device);
        using (releasedKey)
        {
            Assert.Equal(created.KeyId, released.KeyId);
            Assert.Equal(TestServer.KeyBytes(publisherKey), TestServer.KeyBytes(releasedKey));
        }

        Api ready = await server.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.Status);

        // Rotation: a second key object in the token, every data key rewrapped, releases still give the same key.
        Api rotated = await server.PostAsync("/v1/admin/master-key/rotate", null, admin);
        Assert.True(rotated.Status == HttpStatusCode.OK, rotated.Text);
        Assert.Equal(2, rotated.Json.GetProperty("masterKeyVersion").GetInt32());
        Assert.Equal(1, rotated.Json.GetProperty("rewrapped").GetInt32());
        using HpkeKeyPair device2 = HpkeKeyPair.Generate();
        (_, ModelKey afterRotation) = await server.ReleaseAndOpenAsync(licenceToken, licence, "classifier", created.Version, device2);
        using (afterRotation)
        {
            Assert.Equal(TestServer.KeyBytes(publisherKey), TestServer.KeyBytes(afterRotation));
        }

        Assert.DoesNotContain(server.Logs.Lines, line => line.Contains(token.Pin, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_restarted_server_finds_its_token_keys_with_the_PIN_from_an_owner_only_file()
    {
        Pkcs11Token token = Services.RequirePkcs11();
        using var directory = new TempDirectory();
        string pinFile = directory.Sub("hsm.pin");
        File.WriteAllText(pinFile, token.Pin + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(pinFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        string label = NewLabel();
        void Configure(ServerOptions o) => o.MasterKey = new MasterKeyOptions
        {
            Provider = MasterKeyOptions.Pkcs11,
            Pkcs11Module = token.Module,
            TokenLabel = token.Label,
            KeyLabel = label,
            PinFile = pinFile,
        };

        string data = directory.Sub("data");
        byte[] expected;
        string version;
        Licence licence;
        await using (TestServer first = await TestServer.StartAsync(Configure, data))
        {
            string admin = await first.AdminTokenAsync();
            await first.CreateModelAsync(admin, "m");
            (Release created, ModelKey key) = await first.CreateVersionAsync(admin, "m");
            using (key)
            {
                expected = TestServer.KeyBytes(key);
            }

            version = created.Version;
            licence = await first.CreateLicenceAsync(admin, "restart", ["m"]);
            Assert.Equal(HttpStatusCode.OK, (await first.PostAsync("/v1/admin/master-key/rotate", null, admin)).Status);
        }

        // The same data directory, a new process's worth of state: v1 and v2 found in the token, v2 current.
        await using TestServer second = await TestServer.StartAsync(Configure, data);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (_, ModelKey released) = await second.ReleaseAndOpenAsync(await second.LicenceTokenAsync(licence), licence, "m", version, device);
        using (released)
        {
            Assert.Equal(expected, TestServer.KeyBytes(released));
        }

        Assert.Contains(second.Logs.Lines, line => line.Contains("master key v2", StringComparison.Ordinal));

        // A PIN file others can read is refused before the token is touched.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(pinFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
            var options = new ServerOptions { DataDirectory = directory.Sub("other") };
            Configure(options);
            Assert.Contains("chmod 600", Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(options)).Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_pkcs11_configuration_that_cannot_work_is_refused_on_start_with_what_to_fix()
    {
        // No token needed: these fail validation before any module is loaded.
        using var directory = new TempDirectory();
        var missingModule = new ServerOptions
        {
            DataDirectory = directory.Sub("a"),
            MasterKey = new MasterKeyOptions { Provider = "pkcs11", TokenLabel = "t", PinEnvironmentVariable = "X" },
        };
        Assert.Contains("MasterKey:Pkcs11Module", Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(missingModule)).Message, StringComparison.Ordinal);

        var unknown = new ServerOptions { DataDirectory = directory.Sub("b"), MasterKey = new MasterKeyOptions { Provider = "vault" } };
        Assert.Contains("'file'", Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(unknown)).Message, StringComparison.Ordinal);

        string module = typeof(object).Assembly.Location; // any existing file
        var twoPins = new ServerOptions
        {
            DataDirectory = directory.Sub("c"),
            MasterKey = new MasterKeyOptions { Provider = "pkcs11", Pkcs11Module = module, TokenLabel = "t", PinFile = "/x", PinEnvironmentVariable = "X" },
        };
        Assert.Contains("exactly one", Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(twoPins)).Message, StringComparison.Ordinal);

        Pkcs11Token token = Services.RequirePkcs11();
        const string wrongPinVariable = "MODELSEAL_TEST_WRONG_PIN_NOT_SET";
        var unsetPin = new ServerOptions
        {
            DataDirectory = directory.Sub("d"),
            MasterKey = new MasterKeyOptions { Provider = "pkcs11", Pkcs11Module = token.Module, TokenLabel = token.Label, PinEnvironmentVariable = wrongPinVariable },
        };
        Assert.Contains(wrongPinVariable, Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(unsetPin)).Message, StringComparison.Ordinal);

        var noToken = new ServerOptions
        {
            DataDirectory = directory.Sub("e"),
            MasterKey = new MasterKeyOptions { Provider = "pkcs11", Pkcs11Module = token.Module, TokenLabel = "no-such-token", PinEnvironmentVariable = Services.Pkcs11PinVariable },
        };
        ServerConfigurationException e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(noToken));
        Assert.Contains("no-such-token", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Pin, e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_planted_in_the_token_under_the_next_version_label_is_refused_not_adopted()
    {
        // Anyone with the user PIN can create objects: an imported AES key with a value they know, labelled as the next
        // master-key version. It is sensitive and non-extractable from now on, but CKA_LOCAL, CKA_NEVER_EXTRACTABLE and
        // CKA_ALWAYS_SENSITIVE tell it was not generated in the token; the server must not wrap data keys with it.
        Pkcs11Token token = Services.RequirePkcs11();
        string label = NewLabel();
        using (Pkcs11MasterKeyProvider first = Open(token, label))
        {
            var factories = new Pkcs11InteropFactories();
            IObjectAttributeFactoryShortcut a = new(factories);
            first.Use(session => session.CreateObject(
            [
                a.Of(CKA.CKA_CLASS, (ulong)CKO.CKO_SECRET_KEY), a.Of(CKA.CKA_KEY_TYPE, (ulong)CKK.CKK_AES),
                factories.ObjectAttributeFactory.Create(CKA.CKA_VALUE, new byte[32]),
                factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, Pkcs11MasterKeyProvider.VersionLabel(label, 2)),
                a.Of(CKA.CKA_TOKEN, true), a.Of(CKA.CKA_PRIVATE, true), a.Of(CKA.CKA_SENSITIVE, true), a.Of(CKA.CKA_EXTRACTABLE, false),
                a.Of(CKA.CKA_ENCRYPT, true), a.Of(CKA.CKA_DECRYPT, true),
            ]));
        }

        ServerConfigurationException refused = Assert.Throws<ServerConfigurationException>(() => Open(token, label, mayCreate: false));
        Assert.Contains($"'{Pkcs11MasterKeyProvider.VersionLabel(label, 2)}'", refused.Message, StringComparison.Ordinal);
        Assert.Contains("CKA_LOCAL", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Pin, refused.ToString(), StringComparison.Ordinal);
    }

    /// <summary>Attribute creation without the factory's overload noise.</summary>
    private sealed class IObjectAttributeFactoryShortcut(Pkcs11InteropFactories factories)
    {
        public IObjectAttribute Of(CKA type, ulong value) => factories.ObjectAttributeFactory.Create(type, value);

        public IObjectAttribute Of(CKA type, bool value) => factories.ObjectAttributeFactory.Create(type, value);
    }
}
