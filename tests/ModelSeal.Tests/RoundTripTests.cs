using CsCheck;

namespace ModelSeal.Tests;

/// <summary>Seal then open gives back the same bytes, through every opening path and for every boundary size.</summary>
public sealed class RoundTripTests
{
    public static TheoryData<int> BoundarySizes() => [0, 1, 16383, 16384, 16385, 32767, 32768, 32769, (64 * 16384) - 1, 64 * 16384, (64 * 16384) + 1];

    public static TheoryData<string, ModelContentType> RealModels() => new()
    {
        { "ch_ppocr_mobile_v2.0_cls_infer.onnx", ModelContentType.Onnx },
        { "ch_PP-OCRv4_det_infer.onnx", ModelContentType.Onnx },
        { "silero_vad.onnx", ModelContentType.Onnx },
        { "melspectrogram.onnx", ModelContentType.Onnx },
        { "melspectrogram.tflite", ModelContentType.TFLite },
    };

    [Theory]
    [MemberData(nameof(BoundarySizes))]
    public async Task Every_path_round_trips_at_boundary_sizes(int size)
    {
        byte[] model = TestFiles.Bytes(size, size);
        using ModelKey key = Seal.NewKey();
        byte[] sealedModel = Seal.Bytes(model, key);
        await AssertAllPathsReturn(model, sealedModel, key);
    }

    [Theory]
    [MemberData(nameof(RealModels))]
    public async Task Real_models_round_trip_with_their_content_type_detected(string file, ModelContentType expected)
    {
        byte[] model = File.ReadAllBytes(RepoPaths.TestModels(file));
        using ModelKey key = Seal.NewKey();
        var sealedStream = new MemoryStream();
        using (FileStream input = File.OpenRead(RepoPaths.TestModels(file)))
        {
            SealedModelHeader header = await SealedModel.SealAsync(input, sealedStream, key, new SealOptions { ModelId = "real", ModelVersion = "1" });
            Assert.Equal(expected, header.ContentType);
            Assert.Equal(model.Length, header.PlaintextLength);
            Assert.Equal(header.SealedLength, sealedStream.Length);
        }

        await AssertAllPathsReturn(model, sealedStream.ToArray(), key);
    }

    [Fact]
    public void Random_sizes_up_to_several_MiB_round_trip_through_whole_and_streaming_paths()
    {
        using ModelKey key = Seal.NewKey();
        Gen.Int[0, 6 << 20].Select(Gen.Int[1, 4]).Sample(
            (size, parallelism) =>
            {
                byte[] model = TestFiles.Bytes(size, size ^ parallelism);
                byte[] sealedModel = Seal.Bytes(model, key);
                using SealedModelStream stream = SealedModel.OpenReadAsync(new ForwardOnlyStream(sealedModel), key).GetAwaiter().GetResult();
                return Seal.Open(sealedModel, key, parallelism).AsSpan().SequenceEqual(model)
                    && Seal.ReadAll(stream, size).AsSpan().SequenceEqual(model);
            },
            iter: 40);
    }

    [Fact]
    public async Task Random_ranges_read_through_random_access_match_the_model()
    {
        using ModelKey key = Seal.NewKey();
        byte[] model = TestFiles.Bytes((5 * 16384) + 1234, 5);
        byte[] sealedModel = Seal.Bytes(model, key);
        using SealedModelReader reader = await SealedModel.OpenRandomAccessAsync(new MemoryStream(sealedModel), key);
        Gen.Int[0, model.Length + 10].Select(Gen.Int[0, 40000]).Sample(
            (position, count) =>
            {
                var buffer = new byte[count];
                int read = reader.Read(position, buffer);
                int expected = Math.Clamp(model.Length - position, 0, count);
                return read == expected && buffer.AsSpan(0, read).SequenceEqual(model.AsSpan(Math.Min(position, model.Length), read));
            },
            iter: 500);
    }

    [Fact]
    public async Task Parallel_decryption_gives_the_same_bytes_as_sequential()
    {
        byte[] model = TestFiles.Bytes((200 * 16384) + 77, 42);
        using ModelKey key = Seal.NewKey();
        byte[] sealedModel = Seal.Bytes(model, key);
        foreach (int parallelism in new[] { 1, 2, 3, 8, 64 })
        {
            using DecryptedModel opened = await SealedModel.DecryptAsync(new ForwardOnlyStream(sealedModel), key, new DecryptOptions { MaxDegreeOfParallelism = parallelism });
            Assert.True(opened.Span.SequenceEqual(model), $"parallelism {parallelism}");
            using DecryptedModel fromMemory = await SealedModel.DecryptAsync(sealedModel.AsMemory(), key, new DecryptOptions { MaxDegreeOfParallelism = parallelism });
            Assert.True(fromMemory.Span.SequenceEqual(model), $"in memory, parallelism {parallelism}");
        }
    }

    [Fact]
    public async Task Sealing_reads_from_the_current_position_and_a_stated_content_type_wins()
    {
        byte[] model = File.ReadAllBytes(RepoPaths.TestModels("melspectrogram.tflite"));
        using ModelKey key = Seal.NewKey();
        var input = new MemoryStream([.. new byte[100], .. model]) { Position = 100 };
        var output = new MemoryStream();
        SealedModelHeader header = await SealedModel.SealAsync(input, output, key, new SealOptions { ModelId = "m", ModelVersion = "2", ContentType = ModelContentType.Unknown, SealedAt = null });
        Assert.Equal(ModelContentType.Unknown, header.ContentType);
        Assert.Null(header.SealedAt);
        Assert.Equal(model, Seal.Open(output.ToArray(), key));
    }

    private static async Task AssertAllPathsReturn(byte[] model, byte[] sealedModel, ModelKey key)
    {
        foreach (int parallelism in new[] { 1, Environment.ProcessorCount })
        {
            Assert.Equal(model, Seal.Open(sealedModel, key, parallelism));
            using DecryptedModel fromForwardOnly = await SealedModel.DecryptAsync(new ForwardOnlyStream(sealedModel), key, new DecryptOptions { MaxDegreeOfParallelism = parallelism });
            Assert.True(fromForwardOnly.Span.SequenceEqual(model));
            using DecryptedModel fromMemory = await SealedModel.DecryptAsync(sealedModel.AsMemory(), key, new DecryptOptions { MaxDegreeOfParallelism = parallelism });
            Assert.True(fromMemory.Span.SequenceEqual(model));

            // Into the caller's buffer: the model's bytes first, the rest untouched.
            byte[] destination = Enumerable.Repeat((byte)0xA5, model.Length + 3).ToArray();
            SealedModelHeader header = await SealedModel.DecryptAsync(sealedModel.AsMemory(), destination, key, new DecryptOptions { MaxDegreeOfParallelism = parallelism });
            Assert.Equal(model.Length, header.PlaintextLength);
            Assert.True(destination.AsSpan(0, model.Length).SequenceEqual(model));
            Assert.Equal([0xA5, 0xA5, 0xA5], destination[model.Length..]);

            // From a file: every worker reads its own chunks with positional reads.
            string path = Path.Combine(Path.GetTempPath(), $"modelseal-roundtrip-{Guid.NewGuid():N}.mseal");
            await File.WriteAllBytesAsync(path, sealedModel);
            try
            {
                await using var file = new FileStream(path, FileMode.Open, FileAccess.Read);
                using DecryptedModel fromFile = await SealedModel.DecryptAsync(file, key, new DecryptOptions { MaxDegreeOfParallelism = parallelism });
                Assert.True(fromFile.Span.SequenceEqual(model));
                Assert.Equal(file.Length, file.Position);
                file.Position = 0;
                await SealedModel.VerifyAsync(file, key, new DecryptOptions { MaxDegreeOfParallelism = parallelism });

                // File to file (modelseal decrypt): positional reads and writes, no model-sized buffer.
                file.Position = 0;
                await using (var plaintext = new FileStream(path + ".out", FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 0, FileOptions.DeleteOnClose))
                {
                    await SealedModel.DecryptToFileAsync(file, plaintext, key, new DecryptOptions { MaxDegreeOfParallelism = parallelism }, null, default);
                    byte[] written = new byte[model.Length + 1];
                    Assert.Equal(model.Length, RandomAccess.Read(plaintext.SafeFileHandle, written, 0));
                    Assert.True(written.AsSpan(0, model.Length).SequenceEqual(model));
                }
            }
            finally
            {
                File.Delete(path);
            }
        }

        await SealedModel.VerifyAsync(new ForwardOnlyStream(sealedModel), key);
        await using (SealedModelStream stream = await SealedModel.OpenReadAsync(new ForwardOnlyStream(sealedModel), key))
        {
            Assert.Equal(model.Length, stream.Length);
            Assert.Equal(model, Seal.ReadAll(stream));
        }

        using SealedModelReader reader = await SealedModel.OpenRandomAccessAsync(new MemoryStream(sealedModel), key);
        var whole = new byte[model.Length];
        Assert.Equal(model.Length, reader.Read(0, whole));
        Assert.Equal(model, whole);
    }
}
