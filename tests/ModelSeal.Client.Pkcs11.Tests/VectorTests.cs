using System.Text.Json;
using ModelSeal.Hpke;
using ModelSeal.Pkcs11;
using Net.Pkcs11Interop.Common;

namespace ModelSeal.Client.Pkcs11.Tests;

/// <summary>
/// Published vectors through the token's key agreement: the vectors' recipient private keys imported into the token as
/// sensitive, non-extractable objects, and every ciphertext opened (or shared secret derived) by the token's ECDH.
/// </summary>
public sealed class VectorTests
{
    private static byte[] Hex(JsonElement e, string name) => Convert.FromHexString(e.GetProperty(name).GetString()!);

    [Fact]
    public async Task Every_RFC_9180_DHKEM_P256_base_mode_ciphertext_opens_through_the_token()
    {
        using JsonDocument doc = JsonDocument.Parse(await File.ReadAllBytesAsync(RepoPaths.Vectors("hpke", "rfc9180-p256-sha256-aes256gcm.json"), TestContext.Current.CancellationToken));
        JsonElement[] baseMode = [.. doc.RootElement.EnumerateArray().Where(e => e.GetProperty("mode").GetInt32() == 0 && e.GetProperty("kem_id").GetInt32() == 0x10)];
        Assert.NotEmpty(baseMode);

        Pkcs11DeviceKeyOptions options = TestToken.Options();
        using var store = new Pkcs11DeviceKeyStore(options);
        Pkcs11SessionPool sessions = await TestToken.SessionsAsync(store);
        try
        {
            int opened = 0;
            foreach (JsonElement v in baseMode)
            {
                (Net.Pkcs11Interop.HighLevelAPI.IObjectHandle handle, HpkePublicKey publicKey) = Pkcs11DeviceKeyStoreTests.ImportP256(sessions, options.KeyLabel + "-rfc9180", Hex(v, "skRm"), token: false);
                Assert.Equal(Hex(v, "pkRm"), publicKey.Encoded.ToArray());
                Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, sessions.Use(session => LowLevel.GetAttributeReturnValue(options.ModulePath!, session, handle, CKA.CKA_VALUE)));
                Pkcs11KeyAgreement recipient = Pkcs11DeviceKeyStore.ForHandle(sessions, handle, publicKey, "RFC 9180 recipient key");

                byte[] enc = Hex(v, "enc"), info = Hex(v, "info");
                JsonElement[] encryptions = [.. v.GetProperty("encryptions").EnumerateArray()];

                // The one-shot API opens the first (sequence number 0) ciphertext.
                Assert.Equal(Hex(encryptions[0], "pt"), Hpke.Hpke.Open(recipient, enc, info, Hex(encryptions[0], "aad"), Hex(encryptions[0], "ct")));

                // The recipient context (one key agreement by the token) opens them all, in order, and exports match.
                using HpkeContext context = Hpke.Hpke.SetupBaseRecipient(enc, recipient, info);
                foreach (JsonElement encryption in encryptions)
                {
                    Assert.Equal(Hex(encryption, "pt"), context.Open(Hex(encryption, "aad"), Hex(encryption, "ct")));
                    opened++;
                }

                foreach (JsonElement export in v.GetProperty("exports").EnumerateArray())
                {
                    Assert.Equal(Hex(export, "exported_value"), context.Export(Hex(export, "exporter_context"), export.GetProperty("L").GetInt32()));
                }
            }

            Assert.Equal(257 * baseMode.Length, opened);
        }
        finally
        {
            TestToken.Destroy(sessions, options.KeyLabel);
        }
    }

    [Fact]
    public async Task Wycheproof_ECDH_P256_shared_secrets_come_out_of_the_token_with_leading_zeros_kept()
    {
        using JsonDocument doc = JsonDocument.Parse(await File.ReadAllBytesAsync(RepoPaths.Vectors("wycheproof", "ecdh_secp256r1_ecpoint_test.json"), TestContext.Current.CancellationToken));
        JsonElement[] valid = [.. doc.RootElement.GetProperty("testGroups").EnumerateArray().SelectMany(g => g.GetProperty("tests").EnumerateArray())
            .Where(t => t.GetProperty("result").GetString() == "valid" && t.GetProperty("public").GetString()!.StartsWith("04", StringComparison.Ordinal))];
        Assert.True(valid.Length > 50, $"only {valid.Length} valid uncompressed cases");
        Assert.Contains(valid, t => t.GetProperty("shared").GetString()!.StartsWith("00", StringComparison.Ordinal));

        Pkcs11DeviceKeyOptions options = TestToken.Options();
        using var store = new Pkcs11DeviceKeyStore(options);
        Pkcs11SessionPool sessions = await TestToken.SessionsAsync(store);
        try
        {
            foreach (JsonElement t in valid)
            {
                byte[] scalar = Convert.FromHexString(t.GetProperty("private").GetString()!);
                scalar = scalar.Length > 32 ? scalar[^32..] : [.. new byte[32 - scalar.Length], .. scalar];
                (Net.Pkcs11Interop.HighLevelAPI.IObjectHandle handle, HpkePublicKey publicKey) = Pkcs11DeviceKeyStoreTests.ImportP256(sessions, options.KeyLabel + "-wycheproof", scalar, token: false);
                var key = new Pkcs11KeyAgreement(sessions, handle, publicKey, "Wycheproof key");
                byte[] shared = new byte[32];
                key.DeriveSharedSecret(HpkePublicKey.Import(Convert.FromHexString(t.GetProperty("public").GetString()!)), shared);
                Assert.True(t.GetProperty("shared").GetString() == Convert.ToHexStringLower(shared), $"tcId {t.GetProperty("tcId").GetInt32()}");
                sessions.Use(session =>
                {
                    session.DestroyObject(handle);
                    return 0;
                });
            }
        }
        finally
        {
            TestToken.Destroy(sessions, options.KeyLabel);
            TestToken.Destroy(sessions, options.KeyLabel + "-wycheproof");
        }
    }
}
