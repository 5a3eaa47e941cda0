using System.IO.Compression;
using System.Text.Json;

namespace ModelSeal.Tests;

/// <summary>All 35 Wycheproof Cobblestone-256 vectors, through every decryption path (whole, parallel, streaming, random access).</summary>
public sealed class CobblestoneVectorTests
{
    public sealed record Vector(int Id, string Comment, string[] Flags, bool Valid, byte[] Key, byte[] Context, byte[] Ciphertext, long? MessageLength, string? MessageSha512, byte[]? AeadKey, byte[]? BaseNonce)
    {
        public override string ToString() => $"tc{Id}: {Comment}";

        public bool Has(string flag) => Flags.Contains(flag);
    }

    private static readonly Lazy<IReadOnlyList<Vector>> All = new(Load);

    public static TheoryData<int> Ids() => new(All.Value.Select(v => v.Id));

    public static TheoryData<int> IdsWithValidKeySize() => new(All.Value.Where(v => !v.Has("InvalidKeySize")).Select(v => v.Id));

    public static TheoryData<int> IdsWithDerivedKeys() => new(All.Value.Where(v => v.AeadKey is not null).Select(v => v.Id));

    public static TheoryData<int> ValidIds() => new(All.Value.Where(v => v.Valid).Select(v => v.Id));

    private static Vector Get(int id) => All.Value.Single(v => v.Id == id);

    [Fact]
    public void The_file_has_all_35_vectors()
    {
        Assert.Equal(35, All.Value.Count);
        Assert.Equal(10, All.Value.Count(v => v.Valid));
    }

    [Theory]
    [MemberData(nameof(Ids))]
    public async Task Whole_message_decryption_gives_the_declared_outcome(int id)
    {
        Vector v = Get(id);
        foreach (int parallelism in new[] { 1, 2, 4 })
        {
            if (v.Has("InvalidKeySize"))
            {
                Assert.Throws<ModelKeyException>(() => ModelKey.Import(v.Key, "k"));
                return;
            }

            using var key = ModelKey.Import(v.Key, "k");
            if (!Cobblestone.TryGetPlaintextLength(v.Ciphertext.Length, out long length))
            {
                // No message has this ciphertext length (truncated, or trailing bytes): rejected before decrypting.
                Assert.False(v.Valid);
                continue;
            }

            // The three whole-message paths: the single-reader pipeline (any stream), positional reads (a file) and
            // memory (no copy).
            string file = Path.Combine(Path.GetTempPath(), $"modelseal-vector-{id}-{parallelism}-{Guid.NewGuid():N}.bin");
            await File.WriteAllBytesAsync(file, v.Ciphertext);
            try
            {
                await using var fileStream = new FileStream(file, FileMode.Open, FileAccess.Read);
                Task<byte[]> fromStream = Payload.DecryptAsync(new MemoryStream(v.Ciphertext), key, v.Context, length, parallelism, null, default);
                Task<byte[]> fromFile = Payload.DecryptAsync(fileStream, key, v.Context, length, parallelism, null, default);
                byte[] inMemory = new byte[length];
                void FromMemory() => Payload.DecryptInMemory(v.Ciphertext, key, v.Context, length, inMemory, parallelism, default);
                if (v.Valid)
                {
                    byte[] message = await fromStream;
                    Assert.Equal(v.MessageLength, message.Length);
                    Assert.Equal(v.MessageSha512, TestFiles.Sha512(message));
                    Assert.Equal(message, await fromFile);
                    Assert.Equal(fileStream.Length, fileStream.Position);
                    FromMemory();
                    Assert.Equal(message, inMemory);
                }
                else
                {
                    await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => fromStream);
                    await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => fromFile);
                    Assert.Throws<SealedModelAuthenticationException>(FromMemory);
                }
            }
            finally
            {
                File.Delete(file);
            }
        }
    }

    [Theory]
    [MemberData(nameof(IdsWithDerivedKeys))]
    public void Derived_aead_key_and_base_nonce_match(int id)
    {
        Vector v = Get(id);
        Span<byte> aeadKey = stackalloc byte[32], baseNonce = stackalloc byte[12], commitment = stackalloc byte[32];
        Cobblestone.Derive(v.Key, v.Ciphertext.AsSpan(0, 24), v.Context, aeadKey, baseNonce, commitment);
        Assert.Equal(v.AeadKey, aeadKey.ToArray());
        Assert.Equal(v.BaseNonce, baseNonce.ToArray());
    }

    [Theory]
    [MemberData(nameof(IdsWithValidKeySize))]
    public async Task Streaming_releases_only_authenticated_prefix_and_keeps_failing(int id)
    {
        Vector v = Get(id);
        using var key = ModelKey.Import(v.Key, "k");
        var source = new MemoryStream(v.Ciphertext);
        ChunkCipher cipher;
        try
        {
            cipher = await Payload.OpenAsync(source, key, v.Context, default);
        }
        catch (SealedModelAuthenticationException)
        {
            Assert.False(v.Valid);
            Assert.True(v.Has("HeaderFailure"), "only header failures may fail before the first chunk");
            return;
        }

        using var stream = new SealedModelStream(source, cipher, header: null, ownsSource: true);
        var released = new MemoryStream();
        var buffer = new byte[5000];
        Exception? failure = null;
        try
        {
            int read;
            while ((read = stream.Read(buffer)) > 0)
            {
                released.Write(buffer, 0, read);
            }
        }
        catch (SealedModelAuthenticationException e)
        {
            failure = e;
        }

        if (v.Valid)
        {
            Assert.Null(failure);
            Assert.Equal(v.MessageSha512, TestFiles.Sha512(released.ToArray()));
            return;
        }

        Assert.NotNull(failure);
        long prefix = v.Has("PartialPlaintext") ? v.MessageLength!.Value : 0;
        Assert.True(released.Length <= prefix, $"released {released.Length} bytes, beyond the valid prefix of {prefix}");
        if (released.Length == prefix && prefix > 0)
        {
            Assert.Equal(v.MessageSha512, TestFiles.Sha512(released.ToArray()));
        }

        Assert.Throws<SealedModelAuthenticationException>(() => stream.Read(buffer));
        await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => stream.ReadAsync(buffer).AsTask());
    }

    [Theory]
    [MemberData(nameof(IdsWithValidKeySize))]
    public void Random_access_authenticates_length_and_ranges(int id)
    {
        Vector v = Get(id);
        using var key = ModelKey.Import(v.Key, "k");
        SealedModelReader reader;
        try
        {
            reader = SealedModelReader.Open(new MemoryStream(v.Ciphertext), 0, key, v.Context, header: null, ownsSource: true);
        }
        catch (SealedModelAuthenticationException)
        {
            Assert.False(v.Valid);
            return;
        }

        using (reader)
        {
            Assert.True(v.Valid || v.Has("ValidFinalChunk"), "opening authenticates the final chunk, which only ValidFinalChunk vectors may pass");
            var whole = new byte[reader.Length];
            if (v.Valid)
            {
                Assert.Equal(whole.Length, reader.Read(0, whole));
                Assert.Equal(v.MessageSha512, TestFiles.Sha512(whole));
            }
            else
            {
                Assert.Throws<SealedModelAuthenticationException>(() => reader.Read(0, whole));
            }
        }
    }

    [Theory]
    [MemberData(nameof(ValidIds))]
    public async Task Re_encryption_with_the_vector_salt_reproduces_the_ciphertext(int id)
    {
        Vector v = Get(id);
        using var key = ModelKey.Import(v.Key, "k");
        Cobblestone.TryGetPlaintextLength(v.Ciphertext.Length, out long length);
        byte[] message = await Payload.DecryptAsync(new MemoryStream(v.Ciphertext), key, v.Context, length, 2, null, default);
        var output = new MemoryStream();
        await Payload.EncryptAsync(new MemoryStream(message), message.Length, output, key, v.Context, v.Ciphertext[..24], null, default);
        Assert.Equal(v.Ciphertext, output.ToArray());
    }

    private static List<Vector> Load()
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(RepoPaths.Vectors("wycheproof", "c2sp_chunked_encryption_aes_256_gcm_test.json")));
        var vectors = new List<Vector>();
        foreach (JsonElement group in doc.RootElement.GetProperty("testGroups").EnumerateArray())
        {
            Assert.Equal("AEAD_AES_256_GCM", group.GetProperty("aead").GetString());
            Assert.Equal("SHA-512", group.GetProperty("sha").GetString());
            foreach (JsonElement t in group.GetProperty("tests").EnumerateArray())
            {
                byte[]? Hex(string name) => t.TryGetProperty(name, out JsonElement e) ? Convert.FromHexString(e.GetString()!) : null;
                using var inflated = new MemoryStream();
                using (var zlib = new ZLibStream(new MemoryStream(Hex("ct")!), CompressionMode.Decompress))
                {
                    zlib.CopyTo(inflated);
                }

                vectors.Add(new Vector(
                    t.GetProperty("tcId").GetInt32(),
                    t.GetProperty("comment").GetString()!,
                    [.. t.GetProperty("flags").EnumerateArray().Select(f => f.GetString()!)],
                    t.GetProperty("result").GetString() == "valid",
                    Hex("key")!,
                    Hex("ctx")!,
                    inflated.ToArray(),
                    t.TryGetProperty("msgLength", out JsonElement l) ? l.GetInt64() : null,
                    t.TryGetProperty("msgSha512", out JsonElement h) ? h.GetString()!.ToLowerInvariant() : null,
                    Hex("aeadKey"),
                    Hex("baseNonce")));
            }
        }

        return vectors;
    }
}
