using System.Buffers.Binary;
using System.Text;

namespace ModelSeal;

/// <summary>
/// The canonical header of a sealed model (docs/format.md, section 1). Its exact bytes are the Cobblestone context of
/// the payload, so every field is authenticated by the key commitment.
/// </summary>
public sealed class SealedModelHeader
{
    /// <summary>The format version this library reads and writes.</summary>
    public const int FormatVersion = 1;

    /// <summary>Largest header, in bytes.</summary>
    public const int MaxLength = 4096;

    /// <summary>Size of the fixed part: magic, version, header length.</summary>
    public const int FixedLength = 12;

    private const ushort TagModelId = 0x0001;
    private const ushort TagModelVersion = 0x0002;
    private const ushort TagKeyId = 0x0003;
    private const ushort TagContentType = 0x0004;
    private const ushort TagPlaintextLength = 0x0005;
    private const ushort TagSealedAt = 0x8001;
    private const ushort FirstNonCriticalTag = 0x8000;

    private readonly byte[] _encoded;

    private SealedModelHeader(byte[] encoded, string modelId, string modelVersion, string keyId, ModelContentType contentType, long plaintextLength, DateTimeOffset? sealedAt)
    {
        _encoded = encoded;
        ModelId = modelId;
        ModelVersion = modelVersion;
        KeyId = keyId;
        ContentType = contentType;
        PlaintextLength = plaintextLength;
        SealedAt = sealedAt;
    }

    /// <summary>The 8 magic bytes that start every sealed model.</summary>
    public static ReadOnlySpan<byte> Magic => [0x89, (byte)'M', (byte)'S', (byte)'E', (byte)'A', (byte)'L', 0x0D, 0x0A];

    /// <summary>The model id.</summary>
    public string ModelId { get; }

    /// <summary>The model version.</summary>
    public string ModelVersion { get; }

    /// <summary>Id of the data key that opens this model.</summary>
    public string KeyId { get; }

    /// <summary>Content type detected when sealing.</summary>
    public ModelContentType ContentType { get; }

    /// <summary>Length of the model (plaintext) in bytes.</summary>
    public long PlaintextLength { get; }

    /// <summary>When the file was sealed, if recorded (informative, whole seconds).</summary>
    public DateTimeOffset? SealedAt { get; }

    /// <summary>Size of the encoded header in bytes.</summary>
    public int Length => _encoded.Length;

    /// <summary>Number of Cobblestone chunks in the payload.</summary>
    public long ChunkCount => Cobblestone.ChunkCount(PlaintextLength);

    /// <summary>Size of the payload (salt, commitment and chunks) in bytes.</summary>
    public long PayloadLength => Cobblestone.CiphertextLength(PlaintextLength);

    /// <summary>Size of the whole sealed file in bytes.</summary>
    public long SealedLength => Length + PayloadLength;

    /// <summary>The exact header bytes (the Cobblestone context).</summary>
    public ReadOnlySpan<byte> Encoded => _encoded;

    internal byte[] EncodedArray => _encoded;

    /// <summary>Builds and encodes a header.</summary>
    public static SealedModelHeader Create(string modelId, string modelVersion, string keyId, ModelContentType contentType, long plaintextLength, DateTimeOffset? sealedAt)
    {
        Identifier.Validate(modelId, "model id", Identifier.MaxIdLength, nameof(modelId));
        Identifier.Validate(modelVersion, "model version", Identifier.MaxVersionLength, nameof(modelVersion));
        Identifier.Validate(keyId, "key id", Identifier.MaxIdLength, nameof(keyId));
        if (!Enum.IsDefined(contentType))
        {
            throw new ArgumentOutOfRangeException(nameof(contentType), contentType, "Unknown content type.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(plaintextLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(plaintextLength, Cobblestone.MaxPlaintextLength);
        sealedAt = sealedAt is { } t ? DateTimeOffset.FromUnixTimeSeconds(t.ToUnixTimeSeconds()) : null;
        if (sealedAt is { } s && s < DateTimeOffset.UnixEpoch)
        {
            throw new ArgumentOutOfRangeException(nameof(sealedAt), "The sealing time cannot be before 1970.");
        }

        var buffer = new byte[MaxLength];
        int length = FixedLength;
        WriteField(buffer, ref length, TagModelId, Encoding.ASCII.GetBytes(modelId));
        WriteField(buffer, ref length, TagModelVersion, Encoding.ASCII.GetBytes(modelVersion));
        WriteField(buffer, ref length, TagKeyId, Encoding.ASCII.GetBytes(keyId));
        WriteField(buffer, ref length, TagContentType, [(byte)contentType]);
        Span<byte> number = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(number, plaintextLength);
        WriteField(buffer, ref length, TagPlaintextLength, number);
        if (sealedAt is { } at)
        {
            BinaryPrimitives.WriteInt64BigEndian(number, at.ToUnixTimeSeconds());
            WriteField(buffer, ref length, TagSealedAt, number);
        }

        Magic.CopyTo(buffer);
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(10), (ushort)length);
        return new SealedModelHeader(buffer[..length], modelId, modelVersion, keyId, contentType, plaintextLength, sealedAt);
    }

    /// <summary>
    /// Parses a header from the start of <paramref name="data"/> (which may continue with the payload).
    /// </summary>
    /// <exception cref="NotASealedModelException">The data does not start with the magic.</exception>
    /// <exception cref="UnsupportedFormatVersionException">The format version is not 1.</exception>
    /// <exception cref="SealedModelFormatException">The header is malformed.</exception>
    public static SealedModelHeader Parse(ReadOnlySpan<byte> data)
    {
        int length = ParseFixedPart(data);
        if (data.Length < length)
        {
            throw Malformed($"the header declares {length} bytes but the file has only {data.Length}");
        }

        return ParseFields(data[..length].ToArray());
    }

    /// <summary>Reads exactly the header from <paramref name="source"/>, leaving it positioned at the payload.</summary>
    public static async ValueTask<SealedModelHeader> ReadAsync(Stream source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        byte[] fixedPart = new byte[FixedLength];
        int read = await source.ReadAtLeastAsync(fixedPart, FixedLength, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        int length = ParseFixedPart(fixedPart.AsSpan(0, read));
        byte[] encoded = new byte[length];
        fixedPart.CopyTo(encoded, 0);
        read = await source.ReadAtLeastAsync(encoded.AsMemory(FixedLength), length - FixedLength, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (read < length - FixedLength)
        {
            throw Malformed($"the header declares {length} bytes but the file ends after {FixedLength + read}");
        }

        return ParseFields(encoded);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{ModelId} {ModelVersion} ({ContentType.ToName()}, {PlaintextLength} bytes, key {KeyId})";

    private static int ParseFixedPart(ReadOnlySpan<byte> data)
    {
        if (data.Length < Magic.Length || !data[..Magic.Length].SequenceEqual(Magic))
        {
            throw new NotASealedModelException(
                "This is not a sealed model: it does not start with the ModelSeal magic bytes (89 4D 53 45 41 4C 0D 0A).");
        }

        if (data.Length < FixedLength)
        {
            throw Malformed($"the file ends after {data.Length} bytes, inside the fixed {FixedLength}-byte header");
        }

        int version = BinaryPrimitives.ReadUInt16BigEndian(data[8..]);
        if (version != FormatVersion)
        {
            throw new UnsupportedFormatVersionException(version);
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(data[10..]);
        if (length is < FixedLength or > MaxLength)
        {
            throw Malformed($"the header length must be {FixedLength} to {MaxLength} bytes, but it is {length}");
        }

        return length;
    }

    private static SealedModelHeader ParseFields(byte[] encoded)
    {
        string? modelId = null, modelVersion = null, keyId = null;
        ModelContentType? contentType = null;
        long? plaintextLength = null;
        DateTimeOffset? sealedAt = null;
        int previousTag = 0;
        int position = FixedLength;
        while (position < encoded.Length)
        {
            if (encoded.Length - position < 4)
            {
                throw Malformed($"a field at offset {position} is cut off by the end of the header");
            }

            int tag = BinaryPrimitives.ReadUInt16BigEndian(encoded.AsSpan(position));
            int size = BinaryPrimitives.ReadUInt16BigEndian(encoded.AsSpan(position + 2));
            int start = position + 4;
            if (size > encoded.Length - start)
            {
                throw Malformed($"field 0x{tag:X4} at offset {position} declares {size} bytes, past the end of the header at {encoded.Length}");
            }

            if (tag == 0)
            {
                throw Malformed($"tag 0x0000 at offset {position} is reserved");
            }

            if (tag <= previousTag)
            {
                throw Malformed(tag == previousTag
                    ? $"field 0x{tag:X4} appears twice"
                    : $"field 0x{tag:X4} at offset {position} comes after field 0x{previousTag:X4}; fields must be in increasing tag order");
            }

            ReadOnlySpan<byte> value = encoded.AsSpan(start, size);
            switch (tag)
            {
                case TagModelId:
                    modelId = ReadIdentifier(value, "model id", Identifier.MaxIdLength);
                    break;
                case TagModelVersion:
                    modelVersion = ReadIdentifier(value, "model version", Identifier.MaxVersionLength);
                    break;
                case TagKeyId:
                    keyId = ReadIdentifier(value, "key id", Identifier.MaxIdLength);
                    break;
                case TagContentType:
                    if (value.Length != 1 || !Enum.IsDefined((ModelContentType)value[0]))
                    {
                        throw Malformed(value.Length != 1
                            ? $"the content type must be 1 byte, not {value.Length}"
                            : $"content type {value[0]} is not defined (0 unknown, 1 ONNX, 2 ORT, 3 TFLite)");
                    }

                    contentType = (ModelContentType)value[0];
                    break;
                case TagPlaintextLength:
                    ulong declared = ReadUInt64(value, "plaintext length");
                    if (declared > Cobblestone.MaxPlaintextLength)
                    {
                        throw Malformed($"the plaintext length {declared} exceeds the maximum {Cobblestone.MaxPlaintextLength}");
                    }

                    plaintextLength = (long)declared;
                    break;
                case TagSealedAt:
                    ulong seconds = ReadUInt64(value, "sealing time");
                    sealedAt = seconds <= (ulong)DateTimeOffset.MaxValue.ToUnixTimeSeconds()
                        ? DateTimeOffset.FromUnixTimeSeconds((long)seconds)
                        : throw Malformed($"the sealing time {seconds} is out of range");
                    break;
                case < FirstNonCriticalTag:
                    throw Malformed($"it has critical field 0x{tag:X4}, which this version of ModelSeal does not know; upgrade ModelSeal");
                default:
                    break; // Unknown non-critical field: skipped, but still authenticated as part of the header.
            }

            previousTag = tag;
            position = start + size;
        }

        return new SealedModelHeader(
            encoded,
            modelId ?? throw Missing("model id", TagModelId),
            modelVersion ?? throw Missing("model version", TagModelVersion),
            keyId ?? throw Missing("key id", TagKeyId),
            contentType ?? throw Missing("content type", TagContentType),
            plaintextLength ?? throw Missing("plaintext length", TagPlaintextLength),
            sealedAt);
    }

    private static string ReadIdentifier(ReadOnlySpan<byte> value, string what, int maxLength)
    {
        string text = Encoding.Latin1.GetString(value);
        return Identifier.IsValid(text, maxLength)
            ? text
            : throw Malformed(Identifier.Describe(what, maxLength, text));
    }

    private static ulong ReadUInt64(ReadOnlySpan<byte> value, string what) =>
        value.Length == 8 ? BinaryPrimitives.ReadUInt64BigEndian(value) : throw Malformed($"the {what} must be 8 bytes, not {value.Length}");

    private static void WriteField(Span<byte> buffer, ref int position, ushort tag, ReadOnlySpan<byte> value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(buffer[position..], tag);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(position + 2)..], (ushort)value.Length);
        value.CopyTo(buffer[(position + 4)..]);
        position += 4 + value.Length;
    }

    private static SealedModelFormatException Missing(string what, ushort tag) =>
        Malformed($"the required {what} field (0x{tag:X4}) is missing");

    private static SealedModelFormatException Malformed(string problem) =>
        new($"The sealed model's header is malformed: {problem}.");
}
