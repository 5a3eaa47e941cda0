using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelSeal.Cli;

/// <summary>The --json result of <c>encrypt</c>.</summary>
internal sealed record EncryptResult(
    string Input,
    string Output,
    string ModelId,
    string ModelVersion,
    string KeyId,
    string ContentType,
    long PlaintextLength,
    long ChunkCount,
    int HeaderLength,
    long SealedLength,
    DateTimeOffset? SealedAt,
    long ElapsedMilliseconds)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "encrypt";
}

/// <summary>The --json result of <c>decrypt</c>.</summary>
internal sealed record DecryptResult(
    string Input,
    string Output,
    string ModelId,
    string ModelVersion,
    string KeyId,
    string ContentType,
    long PlaintextLength,
    long ChunkCount,
    DateTimeOffset? SealedAt,
    long ElapsedMilliseconds)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "decrypt";

    public bool Authenticated { get; init; } = true;
}

/// <summary>The --json result of <c>verify</c>.</summary>
internal sealed record VerifyResult(
    string Input,
    string ModelId,
    string ModelVersion,
    string KeyId,
    string ContentType,
    long PlaintextLength,
    long ChunkCount,
    long SealedLength,
    DateTimeOffset? SealedAt,
    long ElapsedMilliseconds)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "verify";

    public bool Authenticated { get; init; } = true;
}

/// <summary>The --json result of <c>inspect</c>: header facts only, nothing authenticated.</summary>
internal sealed record InspectResult(
    string Input,
    int FormatVersion,
    int HeaderLength,
    string ModelId,
    string ModelVersion,
    string KeyId,
    string ContentType,
    long PlaintextLength,
    long ChunkCount,
    long PayloadLength,
    long SealedLength,
    long FileLength,
    DateTimeOffset? SealedAt,
    bool LengthMatches,
    string? Warning)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "inspect";

    public bool Authenticated { get; init; }
}

/// <summary>Source-generated (trim- and AOT-safe) serialization of the results, camelCase, one line.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(EncryptResult))]
[JsonSerializable(typeof(DecryptResult))]
[JsonSerializable(typeof(VerifyResult))]
[JsonSerializable(typeof(InspectResult))]
internal sealed partial class CliJsonContext : JsonSerializerContext
{
    /// <summary>Writes <paramref name="value"/> as one line of JSON to standard output.</summary>
    public static void Write<T>(CliContext context, T value) => Write(context, value, Default);

    /// <summary>Writes <paramref name="value"/> as one line of JSON to standard output with the metadata of <paramref name="json"/>.</summary>
    public static void Write<T>(CliContext context, T value, JsonSerializerContext json)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(json);
        var typeInfo = (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)json.GetTypeInfo(typeof(T))!;
        context.Out.WriteLine(JsonSerializer.Serialize(value, typeInfo));
    }
}
