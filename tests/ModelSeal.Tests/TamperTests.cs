
namespace ModelSeal.Tests;

/// <summary>
/// Every modification of a sealed file is rejected with the right exception type and no plaintext: bit flips
/// anywhere, truncation, chunks swapped/duplicated/deleted, trailing bytes, spliced headers, wrong keys.
/// </summary>
public sealed class TamperTests
{
    private const int ModelLength = (2 * Cobblestone.ChunkSize) + 100; // three chunks: two full, one short

    private static readonly ModelKey Key = ModelKey.Generate(Seal.KeyId);
    private static readonly byte[] Model = TestFiles.Bytes(ModelLength, 99);
    private static readonly byte[] Original = Seal.Bytes(Model, Key, "tamper-model", "1.0");
    private static readonly int HeaderLength = SealedModelHeader.Parse(Original).Length;

    private static readonly DecryptOptions Sequential = new() { MaxDegreeOfParallelism = 1 };

    private static int ChunkOffset(int index) => HeaderLength + Cobblestone.PrefixSize + (index * Cobblestone.ChunkCiphertextSize);

    [Fact]
    public void The_untampered_file_opens()
    {
        Assert.Equal(Model, Seal.Open(Original, Key));
    }

    [Fact]
    public async Task Every_single_bit_flip_anywhere_is_rejected()
    {
        var header = SealedModelHeader.Parse(Original);
        int keyIdStart = Original.AsSpan(0, HeaderLength).IndexOf(System.Text.Encoding.ASCII.GetBytes(header.KeyId));
        int keyIdEnd = keyIdStart + header.KeyId.Length;
        var failures = new List<string>();
        byte[] copy = (byte[])Original.Clone();
        for (int bit = 0; bit < Original.Length * 8; bit++)
        {
            copy[bit / 8] ^= (byte)(1 << (bit % 8));

            // Verification runs the same decryption engine as whole-model opening without a model-sized buffer per
            // attempt; every 61st flip also goes through whole-model opening.
            Exception? e = await Record.ExceptionAsync(() => SealedModel.VerifyAsync(new MemoryStream(copy), Key, Sequential));
            if (bit % 61 == 0)
            {
                Exception? whole = await Record.ExceptionAsync(() => SealedModel.DecryptAsync(new MemoryStream(copy), Key, Sequential));
                Exception? inMemory = await Record.ExceptionAsync(() => SealedModel.DecryptAsync(copy.AsMemory(), Key));
                e = whole?.GetType() == e?.GetType() && inMemory?.GetType() == e?.GetType()
                    ? e
                    : new InvalidOperationException($"verify: {e?.GetType().Name}, decrypt: {whole?.GetType().Name}, in memory: {inMemory?.GetType().Name}");
            }

            bool right = bit / 8 >= HeaderLength
                ? e is SealedModelAuthenticationException
                : e is SealedModelFormatException or SealedModelAuthenticationException
                  || (e is ModelKeyException && bit / 8 >= keyIdStart && bit / 8 < keyIdEnd);
            if (!right)
            {
                failures.Add($"bit {bit}: {e?.GetType().Name ?? "accepted"}");
            }

            copy[bit / 8] = Original[bit / 8];
        }

        Assert.Empty(failures);
    }

    [Fact]
    public async Task Truncation_at_every_length_is_rejected_by_every_path()
    {
        for (int length = 0; length < Original.Length; length++)
        {
            Type expected = length < 8 ? typeof(NotASealedModelException)
                : length < HeaderLength ? typeof(SealedModelFormatException)
                : typeof(SealedModelAuthenticationException);
            bool boundary = length < HeaderLength + 100 || (length - HeaderLength - Cobblestone.PrefixSize) % Cobblestone.ChunkCiphertextSize is 0 or 1 or 15 or 16 or 17;
            if (boundary || length % 7 == 0)
            {
                await AssertRejectedEverywhere(Original[..length], expected);
            }
            else
            {
                Assert.IsType(expected, Record.Exception(() => Seal.Open(Original[..length], Key)), exactMatch: true);
            }
        }
    }

    [Fact]
    public async Task Chunks_swapped_duplicated_or_deleted_are_rejected()
    {
        byte[] Chunk(int i) => Original[ChunkOffset(i)..Math.Min(ChunkOffset(i + 1), Original.Length)];
        byte[] prefix = Original[..ChunkOffset(0)];
        byte[][] variants =
        [
            [.. prefix, .. Chunk(1), .. Chunk(0), .. Chunk(2)],   // swapped
            [.. prefix, .. Chunk(0), .. Chunk(0), .. Chunk(2)],   // duplicated in place of chunk 1
            [.. prefix, .. Chunk(0), .. Chunk(1), .. Chunk(1), .. Chunk(2)], // duplicated, inserted
            [.. prefix, .. Chunk(0), .. Chunk(2)],                 // chunk 1 deleted
            [.. prefix, .. Chunk(1), .. Chunk(2)],                 // chunk 0 deleted
            [.. prefix, .. Chunk(0), .. Chunk(1)],                 // final chunk deleted
            [.. prefix, .. Chunk(2)],                              // only the final chunk
        ];
        foreach (byte[] variant in variants)
        {
            await AssertRejectedEverywhere(variant, typeof(SealedModelAuthenticationException));
        }
    }

    [Fact]
    public async Task Trailing_bytes_are_rejected()
    {
        byte[] lastChunk = Original[ChunkOffset(2)..];
        foreach (byte[] extra in new[] { new byte[1], new byte[16], TestFiles.Bytes(Cobblestone.ChunkCiphertextSize, 1), lastChunk, Original })
        {
            await AssertRejectedEverywhere([.. Original, .. extra], typeof(SealedModelAuthenticationException));
        }
    }

    [Fact]
    public async Task A_header_spliced_from_another_sealed_file_is_rejected()
    {
        // A header identical but for the (non-critical, informative) sealing time: still part of the context.
        SealedModelHeader original = SealedModelHeader.Parse(Original);
        Assert.NotNull(original.SealedAt);
        SealedModelHeader later = SealedModelHeader.Create(
            original.ModelId, original.ModelVersion, original.KeyId, original.ContentType, original.PlaintextLength, original.SealedAt.Value.AddSeconds(1));
        Assert.Equal(HeaderLength, later.Length);
        await AssertRejectedEverywhere([.. later.Encoded, .. Original[HeaderLength..]], typeof(SealedModelAuthenticationException));

        // A header claiming another version of the same model, over this payload.
        byte[] newer = Seal.Bytes(Model, Key, "tamper-model", "2.0");
        await AssertRejectedEverywhere([.. newer[..SealedModelHeader.Parse(newer).Length], .. Original[HeaderLength..]], typeof(SealedModelAuthenticationException));
    }

    [Fact]
    public async Task A_wrong_key_with_the_right_id_is_rejected_and_a_key_for_another_id_is_named()
    {
        using var wrong = ModelKey.Generate(Seal.KeyId);
        using var other = ModelKey.Generate("another-key");
        foreach (Func<Stream, Task> open in Paths(wrong))
        {
            await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => open(new MemoryStream(Original)));
        }

        var e = await Assert.ThrowsAsync<ModelKeyException>(() => SealedModel.DecryptAsync(new MemoryStream(Original), other));
        Assert.Contains("'test-key'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'another-key'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Authentication_failures_carry_one_vague_message()
    {
        byte[] flipped = (byte[])Original.Clone();
        flipped[^1] ^= 1;
        using var wrong = ModelKey.Generate(Seal.KeyId);
        var a = await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedModel.DecryptAsync(new MemoryStream(flipped), Key));
        var b = await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedModel.DecryptAsync(new MemoryStream(Original), wrong));
        var c = await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedModel.DecryptAsync(new MemoryStream(Original[..^1]), Key));
        Assert.Equal(a.Message, b.Message);
        Assert.Equal(a.Message, c.Message);
        Assert.Contains("key is wrong", a.Message, StringComparison.Ordinal);
    }

    private static IEnumerable<Func<Stream, Task>> Paths(ModelKey key) =>
    [
        async s => (await SealedModel.DecryptAsync(s, key)).Dispose(),
        async s => await SealedModel.VerifyAsync(s, key),
        async s =>
        {
            await using SealedModelStream stream = await SealedModel.OpenReadAsync(s, key);
            Seal.ReadAll(stream);
        },
    ];

    /// <summary>Whole-model (seekable, forward-only and file), verify and streaming all throw <paramref name="expected"/>.</summary>
    private static async Task AssertRejectedEverywhere(byte[] file, Type expected)
    {
        string path = Path.Combine(Path.GetTempPath(), $"modelseal-tamper-{Guid.NewGuid():N}.mseal");
        await File.WriteAllBytesAsync(path, file);
        try
        {
            foreach (Func<Stream, Task> open in Paths(Key))
            {
                Assert.IsType(expected, await Record.ExceptionAsync(() => open(new MemoryStream(file))), exactMatch: true);
                Assert.IsType(expected, await Record.ExceptionAsync(() => open(new ForwardOnlyStream(file))), exactMatch: true);
                await using var onDisk = new FileStream(path, FileMode.Open, FileAccess.Read);
                Assert.IsType(expected, await Record.ExceptionAsync(() => open(onDisk)), exactMatch: true);
            }

            await using (var sealedFile = new FileStream(path, FileMode.Open, FileAccess.Read))
            await using (var plaintext = new FileStream(path + ".out", FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0, FileOptions.DeleteOnClose))
            {
                Assert.IsType(expected, await Record.ExceptionAsync(() => SealedModel.DecryptToFileAsync(sealedFile, plaintext, Key, null, null, default)), exactMatch: true);
            }
        }
        finally
        {
            File.Delete(path);
        }

        Assert.IsType(expected, await Record.ExceptionAsync(() => SealedModel.DecryptAsync(file.AsMemory(), Key)), exactMatch: true);
    }
}
