using System.Security.Cryptography;

namespace ModelSeal.Tests;

/// <summary>Test data helpers (the repository's files: <see cref="RepoPaths"/>).</summary>
internal static class TestFiles
{
    /// <summary>Deterministic pseudo-random bytes.</summary>
    public static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Sha256(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));

    public static string Sha512(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA512.HashData(data));
}

/// <summary>Seals in memory with a fixed test key.</summary>
internal static class Seal
{
    public const string KeyId = "test-key";

    public static ModelKey NewKey(string keyId = KeyId) => ModelKey.Generate(keyId);

    public static byte[] Bytes(byte[] model, ModelKey key, string modelId = "model", string version = "1", ModelContentType? contentType = null)
    {
        using var output = new MemoryStream();
        SealedModel.SealAsync(new MemoryStream(model), output, key, new SealOptions { ModelId = modelId, ModelVersion = version, ContentType = contentType })
            .GetAwaiter().GetResult();
        return output.ToArray();
    }

    public static byte[] Open(byte[] sealedModel, ModelKey key, int parallelism = 2)
    {
        using DecryptedModel model = SealedModel.DecryptAsync(new MemoryStream(sealedModel), key, new DecryptOptions { MaxDegreeOfParallelism = parallelism })
            .GetAwaiter().GetResult();
        return model.Span.ToArray();
    }

    /// <summary>Reads a whole stream in reads of varying size.</summary>
    public static byte[] ReadAll(Stream stream, int seed = 1)
    {
        var random = new Random(seed);
        var output = new MemoryStream();
        var buffer = new byte[40000];
        int read;
        while ((read = stream.Read(buffer, 0, random.Next(1, buffer.Length))) > 0)
        {
            output.Write(buffer, 0, read);
        }

        return output.ToArray();
    }
}

/// <summary>A forward-only stream that returns reads of random size (like an Android asset stream).</summary>
internal sealed class ForwardOnlyStream(byte[] data, int seed = 7) : Stream
{
    private readonly Random _random = new(seed);
    private int _position;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int count = Math.Min(Math.Min(buffer.Length, data.Length - _position), _random.Next(1, 70000));
        data.AsSpan(_position, count).CopyTo(buffer);
        _position += count;
        return count;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
