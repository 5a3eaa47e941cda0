using System.Text.Json;

namespace ModelSeal.Tests;

/// <summary>
/// The example files of docs/format.md (tests/vectors/modelseal), written by an independent Python implementation:
/// every file gives its declared outcome through the whole-model, verify and streaming paths.
/// </summary>
public sealed class ExampleVectorTests
{
    public sealed record Example(string File, byte[] Key, string KeyId, string Expect, JsonElement? Header, string? PlaintextSha256, string Comment)
    {
        public override string ToString() => File;

        public byte[] Bytes => System.IO.File.ReadAllBytes(RepoPaths.Vectors("modelseal", File));
    }

    private static readonly Lazy<Dictionary<string, Example>> All = new(Load);

    public static TheoryData<string> Files() => new(All.Value.Keys.Order());

    [Fact]
    public void The_manifest_covers_every_outcome_and_every_file()
    {
        string[] outcomes = ["ok", "not-sealed", "unsupported-version", "malformed-header", "authentication"];
        Assert.All(outcomes, o => Assert.Contains(All.Value.Values, e => e.Expect == o));
        var files = Directory.GetFiles(RepoPaths.Vectors("modelseal"), "*.mseal").Select(Path.GetFileName).Order();
        Assert.Equal(files, All.Value.Keys.Order());
    }

    [Theory]
    [MemberData(nameof(Files))]
    public Task Whole_model_decryption_gives_the_declared_outcome(string file) =>
        AssertDeclaredOutcomeAsync(file, async (e, key) =>
        {
            using DecryptedModel model = await SealedModel.DecryptAsync(new MemoryStream(e.Bytes), key);
            Assert.Equal(e.PlaintextSha256, TestFiles.Sha256(model.Span));
            AssertHeader(e, model.Header);
        });

    [Theory]
    [MemberData(nameof(Files))]
    public Task In_memory_decryption_gives_the_declared_outcome(string file) =>
        AssertDeclaredOutcomeAsync(file, async (e, key) =>
        {
            using DecryptedModel model = await SealedModel.DecryptAsync(e.Bytes.AsMemory(), key);
            Assert.Equal(e.PlaintextSha256, TestFiles.Sha256(model.Span));
        });

    [Theory]
    [MemberData(nameof(Files))]
    public Task Verification_of_a_forward_only_stream_gives_the_declared_outcome(string file) =>
        AssertDeclaredOutcomeAsync(file, async (e, key) => AssertHeader(e, await SealedModel.VerifyAsync(new ForwardOnlyStream(e.Bytes), key)));

    [Theory]
    [MemberData(nameof(Files))]
    public Task Streaming_gives_the_declared_outcome(string file) =>
        AssertDeclaredOutcomeAsync(file, async (e, key) =>
        {
            await using SealedModelStream stream = await SealedModel.OpenReadAsync(new ForwardOnlyStream(e.Bytes), key);
            Assert.Equal(e.PlaintextSha256, TestFiles.Sha256(Seal.ReadAll(stream)));
        });

    [Theory]
    [MemberData(nameof(Files))]
    public async Task Header_parsing_gives_the_declared_outcome(string file)
    {
        Example e = All.Value[file];
        Exception? failure = await Record.ExceptionAsync(async () =>
        {
            SealedModelHeader header = await SealedModelHeader.ReadAsync(new MemoryStream(e.Bytes));
            AssertHeader(e, header);
        });
        if (e.Header is null)
        {
            Assert.IsType(ExpectedException(e.Expect), failure, exactMatch: true);
        }
        else
        {
            Assert.Null(failure);
        }
    }

    /// <summary>Runs <paramref name="open"/> with the example's key: it must succeed for "ok", else throw the declared type.</summary>
    private static async Task AssertDeclaredOutcomeAsync(string file, Func<Example, ModelKey, Task> open)
    {
        Example e = All.Value[file];
        using var key = ModelKey.Import(e.Key, e.KeyId);
        if (e.Expect == "ok")
        {
            await open(e, key);
        }
        else
        {
            Assert.IsType(ExpectedException(e.Expect), await Record.ExceptionAsync(() => open(e, key)), exactMatch: true);
        }
    }

    private static Type ExpectedException(string expect) => expect switch
    {
        "not-sealed" => typeof(NotASealedModelException),
        "unsupported-version" => typeof(UnsupportedFormatVersionException),
        "malformed-header" => typeof(SealedModelFormatException),
        "authentication" => typeof(SealedModelAuthenticationException),
        _ => throw new ArgumentOutOfRangeException(nameof(expect), expect, "unknown outcome"),
    };

    private static void AssertHeader(Example e, SealedModelHeader header)
    {
        JsonElement expected = e.Header!.Value;
        Assert.Equal(expected.GetProperty("modelId").GetString(), header.ModelId);
        Assert.Equal(expected.GetProperty("modelVersion").GetString(), header.ModelVersion);
        Assert.Equal(expected.GetProperty("keyId").GetString(), header.KeyId);
        Assert.Equal(expected.GetProperty("contentType").GetString(), header.ContentType.ToName());
        Assert.Equal(expected.GetProperty("plaintextLength").GetInt64(), header.PlaintextLength);
        Assert.Equal(expected.GetProperty("headerLength").GetInt32(), header.Length);
        JsonElement sealedAt = expected.GetProperty("sealedAt");
        Assert.Equal(sealedAt.ValueKind == JsonValueKind.Null ? null : DateTimeOffset.FromUnixTimeSeconds(sealedAt.GetInt64()), header.SealedAt);
    }

    private static Dictionary<string, Example> Load()
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(RepoPaths.Vectors("modelseal", "vectors.json")));
        return doc.RootElement.GetProperty("vectors").EnumerateArray()
            .Select(v => new Example(
                v.GetProperty("file").GetString()!,
                Convert.FromHexString(v.GetProperty("key").GetString()!),
                v.GetProperty("keyId").GetString()!,
                v.GetProperty("expect").GetString()!,
                v.GetProperty("header").ValueKind == JsonValueKind.Null ? null : v.GetProperty("header").Clone(),
                v.GetProperty("plaintextSha256").GetString(),
                v.GetProperty("comment").GetString()!))
            .ToDictionary(e => e.File);
    }
}
