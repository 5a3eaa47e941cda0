using System.Security.Cryptography;
using System.Text.Json;
using CsCheck;
using ModelSeal.Hpke;

namespace ModelSeal.Tests;

/// <summary>RFC 9180 vectors for DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, plus round trips and tampering.</summary>
public sealed class HpkeTests
{
    private static readonly Lazy<JsonElement> BaseModeEntry = new(() =>
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(RepoPaths.Vectors("hpke", "rfc9180-p256-sha256-aes256gcm.json")));
        return doc.RootElement.EnumerateArray().Single(e => e.GetProperty("mode").GetInt32() == 0
            && e.GetProperty("kem_id").GetInt32() == 0x10 && e.GetProperty("kdf_id").GetInt32() == 1 && e.GetProperty("aead_id").GetInt32() == 2).Clone();
    });

    private static byte[] Hex(JsonElement e, string name) => Convert.FromHexString(e.GetProperty(name).GetString()!);

    [Fact]
    public void DeriveKeyPair_matches_the_RFC_vector()
    {
        JsonElement v = BaseModeEntry.Value;
        using HpkeKeyPair recipient = HpkeKeyPair.Derive(Hex(v, "ikmR"));
        using HpkeKeyPair ephemeral = HpkeKeyPair.Derive(Hex(v, "ikmE"));
        Assert.Equal(Hex(v, "pkRm"), recipient.PublicKey.Encoded.ToArray());
        Assert.Equal(Hex(v, "skRm"), recipient.ExportPrivateKey());
        Assert.Equal(Hex(v, "pkEm"), ephemeral.PublicKey.Encoded.ToArray());
        Assert.Equal(Hex(v, "skEm"), ephemeral.ExportPrivateKey());
    }

    /// <summary>
    /// The recipient opens through <see cref="IHpkeKeyAgreement"/> only: the software key, and a key agreement by plain
    /// arithmetic that no code in the library can reach behind.
    /// </summary>
    [Theory]
    [InlineData(nameof(HpkeKeyPair))]
    [InlineData(nameof(ArithmeticKeyAgreement))]
    public void Sender_and_recipient_contexts_match_every_encryption_and_export_of_the_RFC_vector(string keyAgreement)
    {
        JsonElement v = BaseModeEntry.Value;
        byte[] info = Hex(v, "info");
        HpkePublicKey recipientPublicKey = HpkePublicKey.Import(Hex(v, "pkRm"));
        using HpkeContext sender = Hpke.Hpke.SetupBaseSender(recipientPublicKey, info, Hex(v, "ikmE"), out byte[] enc);
        Assert.Equal(Hex(v, "enc"), enc);
        Assert.Equal(Hex(v, "key"), sender.Key.ToArray());
        Assert.Equal(Hex(v, "base_nonce"), sender.BaseNonce.ToArray());
        Assert.Equal(Hex(v, "exporter_secret"), sender.ExporterSecret.ToArray());

        IHpkeKeyAgreement recipientKey = keyAgreement == nameof(HpkeKeyPair) ? HpkeKeyPair.ImportPrivateKey(Hex(v, "skRm")) : new ArithmeticKeyAgreement(Hex(v, "skRm"));
        using var disposable = recipientKey as IDisposable;
        Assert.Equal(Hex(v, "pkRm"), recipientKey.PublicKey.Encoded.ToArray());
        var recording = new RecordingKeyAgreement(recipientKey);
        JsonElement first = v.GetProperty("encryptions")[0];
        Assert.Equal(Hex(first, "pt"), Hpke.Hpke.Open(recording, enc, info, Hex(first, "aad"), Hex(first, "ct")));

        using HpkeContext recipient = Hpke.Hpke.SetupBaseRecipient(enc, recording, info);
        Assert.Equal([enc, enc], recording.Peers);
        int count = 0;
        foreach (JsonElement encryption in v.GetProperty("encryptions").EnumerateArray())
        {
            byte[] aad = Hex(encryption, "aad"), pt = Hex(encryption, "pt"), ct = Hex(encryption, "ct");
            Assert.Equal(ct, sender.Seal(aad, pt));
            Assert.Equal(pt, recipient.Open(aad, ct));
            count++;
        }

        Assert.Equal(257, count);
        foreach (JsonElement export in v.GetProperty("exports").EnumerateArray())
        {
            byte[] exporterContext = Hex(export, "exporter_context");
            int length = export.GetProperty("L").GetInt32();
            Assert.Equal(Hex(export, "exported_value"), sender.Export(exporterContext, length));
            Assert.Equal(Hex(export, "exported_value"), recipient.Export(exporterContext, length));
        }
    }

    [Fact]
    public void Seal_and_open_round_trip_and_any_change_is_refused()
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair other = HpkeKeyPair.Generate();
        Gen.Byte.Array[0, 100].Select(Gen.Byte.Array[0, 40], Gen.Byte.Array[0, 40]).Sample(
            (plaintext, info, aad) =>
            {
                (byte[] enc, byte[] ct) = Hpke.Hpke.Seal(device.PublicKey, info, aad, plaintext);
                if (!Hpke.Hpke.Open(device, enc, info, aad, ct).AsSpan().SequenceEqual(plaintext))
                {
                    return false;
                }

                byte[] flippedCt = (byte[])ct.Clone();
                flippedCt[^1] ^= 1;
                byte[] flippedEnc = (byte[])enc.Clone();
                flippedEnc[^1] ^= 1;
                return Refused(() => Hpke.Hpke.Open(device, enc, info, aad, flippedCt))
                    && Refused(() => Hpke.Hpke.Open(device, flippedEnc, info, aad, ct))
                    && Refused(() => Hpke.Hpke.Open(device, enc, [.. info, 0], aad, ct))
                    && Refused(() => Hpke.Hpke.Open(device, enc, info, [.. aad, 0], ct))
                    && Refused(() => Hpke.Hpke.Open(other, enc, info, aad, ct))
                    && Refused(() => Hpke.Hpke.Open(device, enc, info, aad, ct.AsSpan(0, ct.Length - 1)));
            },
            iter: 200);

        static bool Refused(Action open) => Record.Exception(open) is HpkeOpenException;
    }

    [Fact]
    public async Task A_public_key_imported_once_is_shared_by_concurrent_seals()
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        HpkePublicKey recipient = HpkePublicKey.Import(device.PublicKey.Encoded.Span);
        Assert.True(recipient.Encoded.Span.SequenceEqual(device.PublicKey.Encoded.Span));
        Assert.Throws<ModelKeyException>(() => HpkePublicKey.Import(new byte[65]));

        // Many threads seal to the same imported key at once; every message opens, with its own encapsulated key.
        byte[][] sealedMessages = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => Task.Run(() =>
        {
            (byte[] enc, byte[] ct) = Hpke.Hpke.Seal(recipient, "info"u8, BitConverter.GetBytes(i), BitConverter.GetBytes(i * 7));
            return (byte[])[.. enc, .. ct];
        })));
        for (int i = 0; i < sealedMessages.Length; i++)
        {
            byte[] opened = Hpke.Hpke.Open(device, sealedMessages[i].AsSpan(0, Hpke.Hpke.EncapsulatedKeySize), "info"u8, BitConverter.GetBytes(i), sealedMessages[i].AsSpan(Hpke.Hpke.EncapsulatedKeySize));
            Assert.Equal(BitConverter.GetBytes(i * 7), opened);
        }

        Assert.Equal(200, sealedMessages.Select(m => Convert.ToHexString(m, 0, Hpke.Hpke.EncapsulatedKeySize)).Distinct().Count());
    }

    [Fact]
    public void A_public_key_is_its_encoded_point_with_the_documented_thumbprint_and_value_equality()
    {
        // RFC 9180's pkRm; thumbprint = base64url(SHA-256(65-byte point)), no padding (docs/protocol.md), computed
        // independently of this library. Stored in key-server databases: it must never change.
        byte[] point = Hex(BaseModeEntry.Value, "pkRm");
        HpkePublicKey key = HpkePublicKey.Import(point);
        Assert.Equal("VOW3pHnL9aRQIMu1fLEmLHgVSB4q7TPjd6czuzdNgbc", key.Thumbprint);
        Assert.Equal(key.Thumbprint, key.ToString());
        Assert.Equal(point, key.Encoded.ToArray());

        point[^1] ^= 1; // the key holds its own copy
        Assert.Equal("VOW3pHnL9aRQIMu1fLEmLHgVSB4q7TPjd6czuzdNgbc", key.Thumbprint);
        point[^1] ^= 1;

        using HpkeKeyPair pair = HpkeKeyPair.ImportPrivateKey(Hex(BaseModeEntry.Value, "skRm"));
        Assert.Equal(key, pair.PublicKey);
        Assert.Equal(key.GetHashCode(), pair.PublicKey.GetHashCode());
        Assert.True(key.Equals((object)HpkePublicKey.Import(point)));
        using HpkeKeyPair other = HpkeKeyPair.Generate();
        Assert.NotEqual(key, other.PublicKey);
        Assert.False(key.Equals(null));
    }

    [Theory]
    [InlineData("")]
    [InlineData("04")]
    [InlineData("02b1a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90")] // compressed
    public void Malformed_public_keys_are_refused(string hex)
    {
        var e = Assert.Throws<ModelKeyException>(() => HpkePublicKey.Import(Convert.FromHexString(hex)));
        Assert.Contains("65-byte uncompressed P-256 point", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_point_off_the_curve_is_refused()
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        byte[] point = device.PublicKey.Encoded.ToArray();
        point[^1] ^= 1;
        var e = Assert.Throws<ModelKeyException>(() => HpkePublicKey.Import(point));
        Assert.Contains("not a point on the P-256 curve", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Private_keys_must_be_in_range_and_never_show_in_ToString()
    {
        Assert.Throws<ModelKeyException>(() => HpkeKeyPair.ImportPrivateKey(new byte[32]));
        Assert.Throws<ModelKeyException>(() => HpkeKeyPair.ImportPrivateKey(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Throws<ModelKeyException>(() => HpkeKeyPair.ImportPrivateKey(new byte[31]));
        using HpkeKeyPair key = HpkeKeyPair.Generate();
        byte[] secret = key.ExportPrivateKey();
        Assert.DoesNotContain(Convert.ToHexString(secret), key.ToString(), StringComparison.OrdinalIgnoreCase);
        Assert.StartsWith("HpkeKeyPair { PublicKey = ", key.ToString(), StringComparison.Ordinal);
        Assert.Equal(43, key.PublicKey.Thumbprint.Length);
    }
}

/// <summary>Wycheproof ECDH P-256 with raw points (invalid-curve and malformed points) and HKDF-SHA256.</summary>
public sealed class WycheproofPrimitiveTests
{
    public static TheoryData<int> EcdhIds() => new(Load("ecdh_secp256r1_ecpoint_test.json").Select(t => t.GetProperty("tcId").GetInt32()));

    public static TheoryData<int> HkdfIds() => new(Load("hkdf_sha256_test.json").Select(t => t.GetProperty("tcId").GetInt32()));

    [Theory]
    [MemberData(nameof(EcdhIds))]
    public void Ecdh_with_raw_points_gives_the_shared_secret_or_refuses_the_point(int id)
    {
        JsonElement t = Load("ecdh_secp256r1_ecpoint_test.json").Single(e => e.GetProperty("tcId").GetInt32() == id);
        byte[] publicKey = Convert.FromHexString(t.GetProperty("public").GetString()!);
        byte[] privateKey = Normalize(Convert.FromHexString(t.GetProperty("private").GetString()!));
        string result = t.GetProperty("result").GetString()!;
        using HpkeKeyPair own = HpkeKeyPair.ImportPrivateKey(privateKey);
        byte[] shared = new byte[32];
        Exception? failure = Record.Exception(() => own.DeriveSharedSecret(HpkePublicKey.Import(publicKey), shared));
        if (result == "valid")
        {
            Assert.Null(failure);
            Assert.Equal(t.GetProperty("shared").GetString(), Convert.ToHexStringLower(shared));
        }
        else
        {
            // Invalid points, and compressed points (acceptable in Wycheproof; HPKE uses uncompressed points only).
            Assert.IsType<ModelKeyException>(failure);
        }

        // As an HPKE encapsulated key, the point is checked before the key agreement, accepting exactly the same points.
        var recording = new RecordingKeyAgreement(own);
        Assert.Throws<HpkeOpenException>(() => Hpke.Hpke.Open(recording, publicKey, [], [], new byte[Hpke.Hpke.Overhead]));
        Assert.Equal(result == "valid" ? 1 : 0, recording.Calls);
    }

    [Theory]
    [MemberData(nameof(HkdfIds))]
    public void Hkdf_sha256_matches(int id)
    {
        JsonElement t = Load("hkdf_sha256_test.json").Single(e => e.GetProperty("tcId").GetInt32() == id);
        byte[] Hex(string name) => Convert.FromHexString(t.GetProperty(name).GetString()!);
        int size = t.GetProperty("size").GetInt32();
        byte[] output = new byte[size];
        Exception? failure = Record.Exception(() => HKDF.DeriveKey(HashAlgorithmName.SHA256, Hex("ikm"), output, Hex("salt"), Hex("info")));
        if (t.GetProperty("result").GetString() == "valid")
        {
            Assert.Null(failure);
            Assert.Equal(Hex("okm"), output);
        }
        else
        {
            Assert.IsType<ArgumentException>(failure, exactMatch: false); // output longer than 255 × 32 bytes
        }
    }

    private static byte[] Normalize(byte[] scalar) =>
        scalar.Length > 32 ? scalar[^32..] : [.. new byte[32 - scalar.Length], .. scalar];

    private static List<JsonElement> Load(string file)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(RepoPaths.Vectors("wycheproof", file)));
        return [.. doc.RootElement.GetProperty("testGroups").EnumerateArray().SelectMany(g => g.GetProperty("tests").EnumerateArray()).Select(e => e.Clone())];
    }
}

public sealed class KeyReleaseTests
{
    [Fact]
    public void Info_layout_is_length_prefixed_and_byte_exact()
    {
        byte[] info = KeyRelease.Info("m", "12", "k", "sub");
        byte[] expected = [.. "modelseal-key-release-v1"u8, 0, 0, 1, (byte)'m', 0, 2, (byte)'1', (byte)'2', 0, 1, (byte)'k', 0, 3, (byte)'s', (byte)'u', (byte)'b'];
        Assert.Equal(expected, info);
        Assert.Equal([0, 0, 0, 0, 0x6B, 0x03, 0x90, 0x8B], KeyRelease.Aad(new DateTimeOffset(2026, 11, 23, 1, 2, 3, TimeSpan.Zero)));
    }

    [Fact]
    public void A_released_key_opens_only_with_the_same_binding()
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using ModelKey key = ModelKey.Generate("classifier.3.k1");
        DateTimeOffset lease = DateTimeOffset.FromUnixTimeSeconds(1_900_000_000);
        (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(key, device.PublicKey, "classifier", "3", "device-7", lease);
        Assert.Equal(48, sealedKey.Length);
        using (ModelKey opened = KeyRelease.Open(device, enc, sealedKey, "classifier", "3", "classifier.3.k1", "device-7", lease))
        {
            byte[] a = new byte[32], b = new byte[32];
            key.Export(a);
            opened.Export(b);
            Assert.Equal(a, b);
            Assert.Equal("classifier.3.k1", opened.KeyId);
        }

        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(device, enc, sealedKey, "other", "3", "classifier.3.k1", "device-7", lease));
        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(device, enc, sealedKey, "classifier", "4", "classifier.3.k1", "device-7", lease));
        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(device, enc, sealedKey, "classifier", "3", "classifier.3.k2", "device-7", lease));
        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(device, enc, sealedKey, "classifier", "3", "classifier.3.k1", "device-8", lease));
        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(device, enc, sealedKey, "classifier", "3", "classifier.3.k1", "device-7", lease.AddDays(1)));
    }
}
