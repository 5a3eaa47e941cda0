using System.Buffers.Binary;
using CsCheck;

namespace ModelSeal.Tests;

public sealed class HeaderTests
{
    private static readonly DateTimeOffset When = new(2026, 11, 23, 1, 2, 3, TimeSpan.Zero);

    [Fact]
    public void Encoding_is_canonical_and_byte_exact()
    {
        var header = SealedModelHeader.Create("cls", "1.0", "k1", ModelContentType.Onnx, 578966, When);
        byte[] expected =
        [
            0x89, 0x4D, 0x53, 0x45, 0x41, 0x4C, 0x0D, 0x0A, 0x00, 0x01, 0x00, 0x3D,
            0x00, 0x01, 0x00, 0x03, (byte)'c', (byte)'l', (byte)'s',
            0x00, 0x02, 0x00, 0x03, (byte)'1', (byte)'.', (byte)'0',
            0x00, 0x03, 0x00, 0x02, (byte)'k', (byte)'1',
            0x00, 0x04, 0x00, 0x01, 0x01,
            0x00, 0x05, 0x00, 0x08, 0, 0, 0, 0, 0x00, 0x08, 0xD5, 0x96,
            0x80, 0x01, 0x00, 0x08, 0, 0, 0, 0, 0x6B, 0x03, 0x90, 0x8B,
        ];
        Assert.Equal(expected, header.Encoded.ToArray());
        Assert.Equal(expected.Length, header.Length);
        Assert.Equal(0x6B03908B, When.ToUnixTimeSeconds());
    }

    [Fact]
    public void Any_valid_header_round_trips()
    {
        Gen<string> id = Gen.Char["abcXYZ019"].Select(Gen.String[Gen.Char["abcXYZ019._-"], 0, 63], (first, rest) => first + rest);
        Gen.Select(id, id, id, Gen.Enum<ModelContentType>(), Gen.Long[0, (1L << 52) - 1], Gen.Long[-1, 4102444800]).Sample(
            (modelId, version, keyId, type, length, seconds) =>
            {
                DateTimeOffset? at = seconds >= 0 ? DateTimeOffset.FromUnixTimeSeconds(seconds) : null;
                var header = SealedModelHeader.Create(modelId, version, keyId, type, length, at);
                var parsed = SealedModelHeader.Parse([.. header.Encoded, 0xAA, 0xBB]);
                return parsed.ModelId == modelId && parsed.ModelVersion == version && parsed.KeyId == keyId
                    && parsed.ContentType == type && parsed.PlaintextLength == length && parsed.SealedAt == at
                    && parsed.Encoded.SequenceEqual(header.Encoded);
            });
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("-x")]
    [InlineData("spa ce")]
    [InlineData("ünï")]
    public void Invalid_identifiers_are_refused_when_sealing(string modelId)
    {
        var e = Assert.Throws<ArgumentException>(() => SealedModelHeader.Create(modelId, "1", "k", ModelContentType.Unknown, 0, null));
        Assert.Contains("letters, digits", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Identifier_length_limits_are_enforced()
    {
        SealedModelHeader.Create(new string('m', 128), new string('v', 64), new string('k', 128), ModelContentType.Unknown, 0, null);
        Assert.Throws<ArgumentException>(() => SealedModelHeader.Create(new string('m', 129), "1", "k", ModelContentType.Unknown, 0, null));
        Assert.Throws<ArgumentException>(() => SealedModelHeader.Create("m", new string('v', 65), "k", ModelContentType.Unknown, 0, null));
        Assert.Throws<ArgumentException>(() => SealedModelHeader.Create("m", "1", new string('k', 129), ModelContentType.Unknown, 0, null));
    }

    [Fact]
    public void Errors_say_what_was_expected()
    {
        byte[] good = SealedModelHeader.Create("m", "1", "k", ModelContentType.Unknown, 0, null).Encoded.ToArray();

        Assert.Contains("not a sealed model", Assert.Throws<NotASealedModelException>(() => SealedModelHeader.Parse("\b\u0007onnx"u8)).Message, StringComparison.Ordinal);

        byte[] v9 = (byte[])good.Clone();
        v9[9] = 9;
        var version = Assert.Throws<UnsupportedFormatVersionException>(() => SealedModelHeader.Parse(v9));
        Assert.Equal(9, version.Version);
        Assert.Contains("format version 9 is not supported", version.Message, StringComparison.Ordinal);
        Assert.Contains("reads format version 1", version.Message, StringComparison.Ordinal);

        byte[] huge = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(huge.AsSpan(10), 5000);
        Assert.Contains("12 to 4096 bytes, but it is 5000", Assert.Throws<SealedModelFormatException>(() => SealedModelHeader.Parse(huge)).Message, StringComparison.Ordinal);

        Assert.Contains("declares", Assert.Throws<SealedModelFormatException>(() => SealedModelHeader.Parse(good.AsSpan(0, good.Length - 1))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_critical_fields_duplicates_and_disorder_are_rejected_but_unknown_non_critical_fields_are_skipped()
    {
        byte[] Build(params (ushort Tag, byte[] Value)[] fields)
        {
            var bytes = new List<byte>([0x89, 0x4D, 0x53, 0x45, 0x41, 0x4C, 0x0D, 0x0A, 0, 1, 0, 0]);
            foreach ((ushort tag, byte[] value) in fields)
            {
                bytes.AddRange([(byte)(tag >> 8), (byte)tag, (byte)(value.Length >> 8), (byte)value.Length, .. value]);
            }

            byte[] result = [.. bytes];
            BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(10), (ushort)result.Length);
            return result;
        }

        (ushort, byte[])[] required = [(1, "m"u8.ToArray()), (2, "1"u8.ToArray()), (3, "k"u8.ToArray()), (4, [0]), (5, new byte[8])];
        Assert.Equal("m", SealedModelHeader.Parse(Build(required)).ModelId);
        Assert.Equal("m", SealedModelHeader.Parse(Build([.. required, (0x9000, [1, 2, 3]), (0xFFFF, [])])).ModelId);

        string Error(byte[] header) => Assert.Throws<SealedModelFormatException>(() => SealedModelHeader.Parse(header)).Message;
        Assert.Contains("critical field 0x0042", Error(Build([.. required, (0x0042, [1])])), StringComparison.Ordinal);
        Assert.Contains("appears twice", Error(Build([required[0], required[0], .. required[1..]])), StringComparison.Ordinal);
        Assert.Contains("increasing tag order", Error(Build([required[1], required[0], .. required[2..]])), StringComparison.Ordinal);
        Assert.Contains("key id field (0x0003) is missing", Error(Build([.. required[..2], .. required[3..]])), StringComparison.Ordinal);
        Assert.Contains("content type 7", Error(Build([.. required[..3], (4, [7]), required[4]])), StringComparison.Ordinal);
        Assert.Contains("must be 8 bytes", Error(Build([.. required, (0x8001, [1, 2, 3, 4])])), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ok-sealed-at-0.mseal", 0L, new byte[] { 0x80, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 })]
    [InlineData("ok-sealed-at-max.mseal", 253402300799L, new byte[] { 0x80, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00, 0x3A, 0xFF, 0xF4, 0x41, 0x7F })]
    public void The_sealing_times_at_the_bounds_are_written_and_read_as_the_independent_vectors_have_them(string file, long seconds, byte[] field)
    {
        // 253402300799 = 9999-12-31T23:59:59Z = 0x3A_FFF4_417F (format.md 1.1). The vectors' headers were written by
        // generate.py; the field bytes above by hand.
        byte[] vector = File.ReadAllBytes(RepoPaths.Vectors("modelseal", file));
        DateTimeOffset at = DateTimeOffset.FromUnixTimeSeconds(seconds);
        var header = SealedModelHeader.Create("example-model", "1.0.0", "test-key-1", ModelContentType.Unknown, 100, at);
        Assert.Equal(vector.AsSpan(0, header.Length).ToArray(), header.Encoded.ToArray());
        Assert.Equal(field, header.Encoded[^12..].ToArray());
        Assert.Equal(at, SealedModelHeader.Parse(vector).SealedAt);
    }

    [Fact]
    public void The_writer_accepts_every_DateTimeOffset_from_1970_and_refuses_earlier_ones()
    {
        // DateTimeOffset ends at 9999-12-31T23:59:59.9999999Z: written as its whole second, the largest value there is.
        Assert.Equal(253402300799L, BinaryPrimitives.ReadInt64BigEndian(SealedModelHeader.Create("m", "1", "k", ModelContentType.Unknown, 0, DateTimeOffset.MaxValue).Encoded[^8..]));
        Assert.Equal(0L, BinaryPrimitives.ReadInt64BigEndian(SealedModelHeader.Create("m", "1", "k", ModelContentType.Unknown, 0, DateTimeOffset.UnixEpoch.AddTicks(9_999_999)).Encoded[^8..]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SealedModelHeader.Create("m", "1", "k", ModelContentType.Unknown, 0, DateTimeOffset.UnixEpoch.AddTicks(-1)));
    }

    [Theory]
    [InlineData(253402300800UL)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 63)]
    public void A_sealing_time_after_9999_or_negative_when_misread_as_signed_is_malformed(ulong seconds)
    {
        byte[] header = SealedModelHeader.Create("m", "1", "k", ModelContentType.Unknown, 0, DateTimeOffset.UnixEpoch).Encoded.ToArray();
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(header.Length - 8), seconds);
        Assert.Contains("sealing time", Assert.Throws<SealedModelFormatException>(() => SealedModelHeader.Parse(header)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reading_from_a_stream_consumes_exactly_the_header()
    {
        var header = SealedModelHeader.Create("m", "1", "k", ModelContentType.Unknown, 0, When);
        var stream = new MemoryStream([.. header.Encoded, 1, 2, 3]);
        SealedModelHeader read = await SealedModelHeader.ReadAsync(stream);
        Assert.Equal(header.Length, stream.Position);
        Assert.Equal(When, read.SealedAt);
        Assert.Equal("m 1 (unknown, 0 bytes, key k)", read.ToString());
    }
}
