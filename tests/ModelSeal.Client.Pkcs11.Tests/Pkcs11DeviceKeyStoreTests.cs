using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Pkcs11;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace ModelSeal.Client.Pkcs11.Tests;

/// <summary>The PKCS#11 device key store against a real token (SoftHSM2): the key it makes, finds again and refuses.</summary>
public sealed class Pkcs11DeviceKeyStoreTests
{
    [Fact]
    public async Task The_generated_private_key_cannot_be_read_out_of_the_token()
    {
        Pkcs11DeviceKeyOptions options = TestToken.Options();
        using var store = new Pkcs11DeviceKeyStore(options);
        var key = (Pkcs11KeyAgreement)await store.GetOrCreateAsync(TestContext.Current.CancellationToken);
        Pkcs11SessionPool sessions = store.Sessions!;
        try
        {
            // The attributes the store generated it with, and those the token keeps since.
            Dictionary<CKA, bool> flags = sessions.Use(session =>
            {
                CKA[] names = [CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_LOCAL, CKA.CKA_TOKEN, CKA.CKA_PRIVATE, CKA.CKA_DERIVE, CKA.CKA_SIGN, CKA.CKA_DECRYPT, CKA.CKA_UNWRAP, CKA.CKA_MODIFIABLE];
                List<IObjectAttribute> read = session.GetAttributeValue(key.PrivateKey, [.. names]);
                return names.Select((name, i) => (name, read[i].GetValueAsBool())).ToDictionary(p => p.name, p => p.Item2);
            });
            Assert.Equal(
                new Dictionary<CKA, bool>
                {
                    [CKA.CKA_SENSITIVE] = true, [CKA.CKA_EXTRACTABLE] = false, [CKA.CKA_NEVER_EXTRACTABLE] = true, [CKA.CKA_ALWAYS_SENSITIVE] = true,
                    [CKA.CKA_LOCAL] = true, [CKA.CKA_TOKEN] = true, [CKA.CKA_PRIVATE] = true, [CKA.CKA_DERIVE] = true,
                    [CKA.CKA_SIGN] = false, [CKA.CKA_DECRYPT] = false, [CKA.CKA_UNWRAP] = false, [CKA.CKA_MODIFIABLE] = false,
                },
                flags);

            // C_GetAttributeValue(CKA_VALUE) is refused with CKR_ATTRIBUTE_SENSITIVE (asked at the low level, which
            // returns the token's own return value).
            Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, sessions.Use(session => LowLevel.GetAttributeReturnValue(options.ModulePath!, session, key.PrivateKey, CKA.CKA_VALUE)));
            Assert.True(sessions.Use(session => session.GetAttributeValue(key.PrivateKey, [CKA.CKA_VALUE])[0].CannotBeRead));

            // C_WrapKey under a wrapping key of our own is refused; so is making the key extractable afterwards.
            Pkcs11Exception wrap = sessions.Use(session =>
            {
                IObjectAttributeFactory a = sessions.Factories.ObjectAttributeFactory;
                using IMechanism generate = sessions.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN);
                IObjectHandle wrappingKey = session.GenerateKey(generate, [a.Create(CKA.CKA_TOKEN, false), a.Create(CKA.CKA_VALUE_LEN, 32UL), a.Create(CKA.CKA_WRAP, true), a.Create(CKA.CKA_EXTRACTABLE, true)]);
                try
                {
                    using IMechanism wrapMechanism = sessions.Factories.MechanismFactory.Create(CKM.CKM_AES_KEY_WRAP_PAD);
                    return Assert.Throws<Pkcs11Exception>(() => session.WrapKey(wrapMechanism, wrappingKey, key.PrivateKey));
                }
                finally
                {
                    session.DestroyObject(wrappingKey);
                }
            });
            Assert.Equal(CKR.CKR_KEY_UNEXTRACTABLE, wrap.RV);
            Pkcs11Exception modify = sessions.Use(session => Assert.Throws<Pkcs11Exception>(() =>
                session.SetAttributeValue(key.PrivateKey, [sessions.Factories.ObjectAttributeFactory.Create(CKA.CKA_EXTRACTABLE, true)])));
            Assert.Contains(modify.RV, new[] { CKR.CKR_ATTRIBUTE_READ_ONLY, CKR.CKR_ACTION_PROHIBITED });

            // Nothing about the key names the PIN.
            Assert.DoesNotContain(TestToken.Pin, key.ToString(), StringComparison.Ordinal);
            Assert.DoesNotContain(TestToken.Pin, store.ToString(), StringComparison.Ordinal);
            Assert.Contains(key.PublicKey.Thumbprint, key.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            TestToken.Destroy(sessions, options.KeyLabel);
        }
    }

    [Fact]
    public async Task The_same_key_is_found_again_by_a_new_store_and_not_regenerated()
    {
        Pkcs11DeviceKeyOptions options = TestToken.Options();
        HpkePublicKey first;
        using (var store = new Pkcs11DeviceKeyStore(options))
        {
            first = (await store.GetOrCreateAsync(TestContext.Current.CancellationToken)).PublicKey;
            Assert.Same(await store.GetOrCreateAsync(TestContext.Current.CancellationToken), await store.GetOrCreateAsync(TestContext.Current.CancellationToken));
        }

        using var again = new Pkcs11DeviceKeyStore(options);
        IHpkeKeyAgreement key = await again.GetOrCreateAsync(TestContext.Current.CancellationToken);
        try
        {
            Assert.Equal(first, key.PublicKey);
            Assert.Single(TestToken.Objects(again.Sessions!, options.KeyLabel, CKO.CKO_PRIVATE_KEY));
            Assert.Single(TestToken.Objects(again.Sessions!, options.KeyLabel, CKO.CKO_PUBLIC_KEY));

            // The token's key agreement is ECDH: it agrees with the software side, both ways.
            using HpkeKeyPair peer = HpkeKeyPair.Generate();
            byte[] inToken = new byte[32], inSoftware = new byte[32];
            key.DeriveSharedSecret(peer.PublicKey, inToken);
            peer.DeriveSharedSecret(key.PublicKey, inSoftware);
            Assert.Equal(inSoftware, inToken);
            Assert.Throws<ArgumentException>(() => key.DeriveSharedSecret(peer.PublicKey, new byte[31]));
            Assert.Throws<ArgumentNullException>(() => key.DeriveSharedSecret(null!, inToken));
        }
        finally
        {
            TestToken.Destroy(again.Sessions!, options.KeyLabel);
        }

        // Disposed: the key agreement refuses to run.
        again.Dispose();
        using HpkeKeyPair late = HpkeKeyPair.Generate();
        Assert.Throws<ObjectDisposedException>(() => key.DeriveSharedSecret(late.PublicKey, new byte[32]));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => again.GetOrCreateAsync(TestContext.Current.CancellationToken).AsTask());
    }

    [Fact]
    public async Task Concurrent_key_agreements_and_first_calls_are_safe()
    {
        Pkcs11DeviceKeyOptions options = TestToken.Options();
        using var store = new Pkcs11DeviceKeyStore(options);
        try
        {
            // Concurrent first calls: one key, generated once.
            IHpkeKeyAgreement[] keys = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => store.GetOrCreateAsync(TestContext.Current.CancellationToken).AsTask(), TestContext.Current.CancellationToken)));
            IHpkeKeyAgreement key = Assert.Single(keys.Distinct());
            Assert.Single(TestToken.Objects(store.Sessions!, options.KeyLabel, CKO.CKO_PRIVATE_KEY));

            HpkeKeyPair[] peers = [.. Enumerable.Range(0, 64).Select(_ => HpkeKeyPair.Generate())];
            try
            {
                bool[] agreed = await Task.WhenAll(peers.Select(peer => Task.Run(
                    () =>
                    {
                        byte[] inToken = new byte[32], inSoftware = new byte[32];
                        key.DeriveSharedSecret(peer.PublicKey, inToken);
                        peer.DeriveSharedSecret(key.PublicKey, inSoftware);
                        return inToken.AsSpan().SequenceEqual(inSoftware);
                    },
                    TestContext.Current.CancellationToken)));
                Assert.All(agreed, Assert.True);
            }
            finally
            {
                Array.ForEach(peers, p => p.Dispose());
            }
        }
        finally
        {
            TestToken.Destroy(store.Sessions!, options.KeyLabel);
        }
    }

    [Fact]
    public async Task The_PIN_can_come_from_a_file_and_a_missing_PIN_is_PinUnavailable()
    {
        Pkcs11DeviceKeyOptions options = TestToken.Options();
        using var directory = new TempDirectory();
        string pinFile = directory.Sub("token.pin");
        OwnerOnlyFile.Write(pinFile, TestToken.Pin + "\n");
        using (var store = new Pkcs11DeviceKeyStore(new Pkcs11DeviceKeyOptions { ModulePath = options.ModulePath, TokenLabel = options.TokenLabel, KeyLabel = options.KeyLabel, PinFile = pinFile }))
        {
            await store.GetOrCreateAsync(TestContext.Current.CancellationToken);
            TestToken.Destroy(store.Sessions!, options.KeyLabel);
        }

        async Task<Pkcs11DeviceKeyException> Fails(Pkcs11DeviceKeyOptions o)
        {
            using var store = new Pkcs11DeviceKeyStore(o);
            return await Assert.ThrowsAsync<Pkcs11DeviceKeyException>(() => store.GetOrCreateAsync(TestContext.Current.CancellationToken).AsTask());
        }

        Pkcs11DeviceKeyException noVariable = await Fails(new() { ModulePath = options.ModulePath, TokenLabel = options.TokenLabel, PinEnvironmentVariable = "MODELSEAL_TEST_NO_SUCH_PIN_VARIABLE" });
        Assert.Equal(Pkcs11DeviceKeyError.PinUnavailable, noVariable.Error);
        Assert.Contains("MODELSEAL_TEST_NO_SUCH_PIN_VARIABLE", noVariable.Message, StringComparison.Ordinal);

        Pkcs11DeviceKeyException noFile = await Fails(new() { ModulePath = options.ModulePath, TokenLabel = options.TokenLabel, PinFile = directory.Sub("missing.pin") });
        Assert.Equal(Pkcs11DeviceKeyError.PinUnavailable, noFile.Error);
        Assert.Contains("missing.pin", noFile.Message, StringComparison.Ordinal);

        OwnerOnlyFile.Write(directory.Sub("empty.pin"), " \n");
        Pkcs11DeviceKeyException empty = await Fails(new() { ModulePath = options.ModulePath, TokenLabel = options.TokenLabel, PinFile = directory.Sub("empty.pin") });
        Assert.Equal(Pkcs11DeviceKeyError.PinUnavailable, empty.Error);
        Assert.Contains("is empty", empty.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_token_or_an_unloadable_module_is_a_typed_error_with_a_hint()
    {
        Pkcs11DeviceKeyOptions options = TestToken.Options();
        using var directory = new TempDirectory();

        async Task<Pkcs11DeviceKeyException> Fails(Pkcs11DeviceKeyOptions o)
        {
            using var store = new Pkcs11DeviceKeyStore(o);
            Pkcs11DeviceKeyException e = await Assert.ThrowsAsync<Pkcs11DeviceKeyException>(() => store.GetOrCreateAsync(TestContext.Current.CancellationToken).AsTask());
            Assert.DoesNotContain(TestToken.Pin, e.ToString(), StringComparison.Ordinal);
            return e;
        }

        Pkcs11DeviceKeyException token = await Fails(new() { ModulePath = options.ModulePath, TokenLabel = "no-such-token", PinEnvironmentVariable = TestToken.PinVariable });
        Assert.Equal(Pkcs11DeviceKeyError.TokenNotFound, token.Error);
        Assert.Contains("token 'no-such-token' is not present", token.Message, StringComparison.Ordinal);
        Assert.Contains($"'{options.TokenLabel}' in slot", token.Message, StringComparison.Ordinal); // lists the tokens that are there

        Pkcs11DeviceKeyException slot = await Fails(new() { ModulePath = options.ModulePath, SlotId = 987654321, PinEnvironmentVariable = TestToken.PinVariable });
        Assert.Equal(Pkcs11DeviceKeyError.TokenNotFound, slot.Error);
        Assert.Contains("slot 987654321", slot.Message, StringComparison.Ordinal);

        Pkcs11DeviceKeyException missing = await Fails(new() { ModulePath = directory.Sub("no-such-module.so"), TokenLabel = options.TokenLabel, PinEnvironmentVariable = TestToken.PinVariable });
        Assert.Equal(Pkcs11DeviceKeyError.ModuleNotLoadable, missing.Error);
        Assert.Contains("does not exist", missing.Message, StringComparison.Ordinal);

        string notALibrary = directory.Sub("not-a-library.so");
        await File.WriteAllTextAsync(notALibrary, "not a shared library", TestContext.Current.CancellationToken);
        Pkcs11DeviceKeyException unloadable = await Fails(new() { ModulePath = notALibrary, TokenLabel = options.TokenLabel, PinEnvironmentVariable = TestToken.PinVariable });
        Assert.Equal(Pkcs11DeviceKeyError.ModuleNotLoadable, unloadable.Error);
        Assert.Contains("could not be loaded", unloadable.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("extractable")]
    [InlineData("P-384")]
    [InlineData("imported")]
    [InlineData("signing, not derive")]
    [InlineData("no public key")]
    [InlineData("two private keys")]
    [InlineData("another key's public key")]
    public async Task A_key_under_the_label_that_is_not_a_protected_P256_derive_key_is_refused(string planted)
    {
        Pkcs11DeviceKeyOptions options = TestToken.Options();
        Pkcs11DeviceKeyOptions helperOptions = TestToken.Options();
        using var helper = new Pkcs11DeviceKeyStore(helperOptions);
        Pkcs11SessionPool sessions = await TestToken.SessionsAsync(helper);
        try
        {
            Plant(sessions, options.KeyLabel, planted);
            using var store = new Pkcs11DeviceKeyStore(options);
            Pkcs11DeviceKeyException e = await Assert.ThrowsAsync<Pkcs11DeviceKeyException>(() => store.GetOrCreateAsync(TestContext.Current.CancellationToken).AsTask());
            Assert.Equal(Pkcs11DeviceKeyError.KeyRefused, e.Error);
            Assert.Contains(options.KeyLabel, e.Message, StringComparison.Ordinal);
            string expected = planted switch
            {
                "extractable" => "CKA_EXTRACTABLE = false",
                "P-384" => "is not an EC P-256",
                "imported" => "CKA_LOCAL",
                "signing, not derive" => "CKA_DERIVE",
                "no public key" => "has no public key",
                "two private keys" => "holds 2 private keys",
                _ => "is not its public key",
            };
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);

            // Refused, not replaced: nothing was generated under the label.
            Assert.Equal(planted == "two private keys" ? 2 : 1, TestToken.Objects(sessions, options.KeyLabel, CKO.CKO_PRIVATE_KEY).Count);
        }
        finally
        {
            TestToken.Destroy(sessions, options.KeyLabel);
            TestToken.Destroy(sessions, helperOptions.KeyLabel);
        }
    }

    [Fact]
    public void Options_are_checked_when_the_store_is_made()
    {
        Assert.Contains("ModulePath", Assert.Throws<ArgumentException>(() => new Pkcs11DeviceKeyStore(new Pkcs11DeviceKeyOptions { TokenLabel = "t", PinFile = "p" })).Message, StringComparison.Ordinal);
        Assert.Contains("exactly one of Pkcs11DeviceKeyOptions.TokenLabel and SlotId", Assert.Throws<ArgumentException>(() => new Pkcs11DeviceKeyStore(new Pkcs11DeviceKeyOptions { ModulePath = "m", PinFile = "p" })).Message, StringComparison.Ordinal);
        Assert.Contains("exactly one of Pkcs11DeviceKeyOptions.TokenLabel and SlotId", Assert.Throws<ArgumentException>(() => new Pkcs11DeviceKeyStore(new Pkcs11DeviceKeyOptions { ModulePath = "m", TokenLabel = "t", SlotId = 1, PinFile = "p" })).Message, StringComparison.Ordinal);
        Assert.Contains("PinFile and PinEnvironmentVariable", Assert.Throws<ArgumentException>(() => new Pkcs11DeviceKeyStore(new Pkcs11DeviceKeyOptions { ModulePath = "m", TokenLabel = "t" })).Message, StringComparison.Ordinal);
        Assert.Contains("PinFile and PinEnvironmentVariable", Assert.Throws<ArgumentException>(() => new Pkcs11DeviceKeyStore(new Pkcs11DeviceKeyOptions { ModulePath = "m", TokenLabel = "t", PinFile = "p", PinEnvironmentVariable = "V" })).Message, StringComparison.Ordinal);
        Assert.Contains("KeyLabel", Assert.Throws<ArgumentException>(() => new Pkcs11DeviceKeyStore(new Pkcs11DeviceKeyOptions { ModulePath = "m", TokenLabel = "t", PinFile = "p", KeyLabel = " " })).Message, StringComparison.Ordinal);

        // The DI registration checks them when it is called, not at the first key request.
        Assert.Contains("ModulePath", Assert.Throws<ArgumentException>(() => new ServiceCollection().AddModelSealPkcs11DeviceKey(o => o.TokenLabel = "t")).Message, StringComparison.Ordinal);
    }

    /// <summary>Puts an object under <paramref name="label"/> that the store must refuse.</summary>
    private static void Plant(Pkcs11SessionPool sessions, string label, string kind)
    {
        Pkcs11InteropFactories f = sessions.Factories;
        IObjectAttributeFactory a = f.ObjectAttributeFactory;
        byte[] p256 = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
        byte[] p384 = [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];

        void GenerateEc(byte[] curve, bool extractable, bool derive, byte[] id) => sessions.UseLocked(session =>
        {
            using IMechanism mechanism = f.MechanismFactory.Create(CKM.CKM_EC_KEY_PAIR_GEN);
            session.GenerateKeyPair(
                mechanism,
                [a.Create(CKA.CKA_TOKEN, true), a.Create(CKA.CKA_LABEL, label), a.Create(CKA.CKA_ID, id), a.Create(CKA.CKA_EC_PARAMS, curve)],
                [a.Create(CKA.CKA_TOKEN, true), a.Create(CKA.CKA_PRIVATE, true), a.Create(CKA.CKA_LABEL, label), a.Create(CKA.CKA_ID, id), a.Create(CKA.CKA_SENSITIVE, true),
                    a.Create(CKA.CKA_EXTRACTABLE, extractable), a.Create(CKA.CKA_DERIVE, derive), a.Create(CKA.CKA_SIGN, !derive)],
                out _,
                out _);
            return 0;
        });

        byte[] id = RandomNumberGenerator.GetBytes(16);
        switch (kind)
        {
            case "extractable":
                GenerateEc(p256, extractable: true, derive: true, id);
                break;
            case "P-384":
                GenerateEc(p384, extractable: false, derive: true, id);
                break;
            case "signing, not derive":
                GenerateEc(p256, extractable: false, derive: false, id);
                break;
            case "two private keys":
                GenerateEc(p256, extractable: false, derive: true, id);
                GenerateEc(p256, extractable: false, derive: true, RandomNumberGenerator.GetBytes(16));
                break;
            case "no public key":
                GenerateEc(p256, extractable: false, derive: true, id);
                foreach (IObjectHandle handle in TestToken.Objects(sessions, label, CKO.CKO_PUBLIC_KEY))
                {
                    sessions.Use(session =>
                    {
                        session.DestroyObject(handle);
                        return 0;
                    });
                }

                break;
            case "another key's public key":
                // The private key's CKA_ID names a public key of another pair.
                GenerateEc(p256, extractable: false, derive: true, id);
                using (HpkeKeyPair other = HpkeKeyPair.Generate())
                {
                    foreach (IObjectHandle handle in TestToken.Objects(sessions, label, CKO.CKO_PUBLIC_KEY))
                    {
                        sessions.Use(session =>
                        {
                            session.DestroyObject(handle);
                            return session.CreateObject([a.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_EC), a.Create(CKA.CKA_TOKEN, true),
                                a.Create(CKA.CKA_LABEL, label), a.Create(CKA.CKA_ID, id), a.Create(CKA.CKA_EC_PARAMS, p256), a.Create(CKA.CKA_EC_POINT, [0x04, 0x41, .. other.PublicKey.Encoded.Span])]);
                        });
                    }
                }

                break;
            case "imported":
                // A P-256 key whose value was known outside the token: sensitive and unextractable since its import, but not CKA_LOCAL.
                ImportP256(sessions, label, RandomNumberGenerator.GetBytes(32), token: true);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    /// <summary>
    /// Imports a P-256 private key (and its public key, same CKA_ID) as a sensitive, non-extractable, derive-only object;
    /// a token object when <paramref name="token"/>, else a session object (gone with the store's sessions).
    /// </summary>
    internal static (IObjectHandle PrivateKey, HpkePublicKey PublicKey) ImportP256(Pkcs11SessionPool sessions, string label, byte[] scalar, bool token)
    {
        IObjectAttributeFactory a = sessions.Factories.ObjectAttributeFactory;
        byte[] p256 = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
        using HpkeKeyPair software = HpkeKeyPair.ImportPrivateKey(scalar);
        byte[] id = RandomNumberGenerator.GetBytes(16);
        IObjectHandle privateKey = sessions.UseLocked(session =>
        {
            session.CreateObject([a.Create(CKA.CKA_CLASS, CKO.CKO_PUBLIC_KEY), a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_EC), a.Create(CKA.CKA_TOKEN, token),
                a.Create(CKA.CKA_LABEL, label), a.Create(CKA.CKA_ID, id), a.Create(CKA.CKA_EC_PARAMS, p256), a.Create(CKA.CKA_EC_POINT, [0x04, 0x41, .. software.PublicKey.Encoded.Span])]);
            return session.CreateObject([a.Create(CKA.CKA_CLASS, CKO.CKO_PRIVATE_KEY), a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_EC), a.Create(CKA.CKA_TOKEN, token),
                a.Create(CKA.CKA_PRIVATE, true), a.Create(CKA.CKA_LABEL, label), a.Create(CKA.CKA_ID, id), a.Create(CKA.CKA_EC_PARAMS, p256), a.Create(CKA.CKA_VALUE, scalar),
                a.Create(CKA.CKA_SENSITIVE, true), a.Create(CKA.CKA_EXTRACTABLE, false), a.Create(CKA.CKA_DERIVE, true), a.Create(CKA.CKA_SIGN, false)]);
        });
        return (privateKey, software.PublicKey);
    }
}
