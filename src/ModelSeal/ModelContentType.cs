namespace ModelSeal;

/// <summary>What kind of model a sealed file holds, as detected from the plaintext when it was sealed.</summary>
public enum ModelContentType
{
    /// <summary>Not recognised.</summary>
    Unknown = 0,

    /// <summary>ONNX protobuf (<c>onnx.ModelProto</c>).</summary>
    Onnx = 1,

    /// <summary>ONNX Runtime's ORT format (FlatBuffer, identifier <c>ORTM</c>).</summary>
    Ort = 2,

    /// <summary>TensorFlow Lite (FlatBuffer, identifier <c>TFL3</c>).</summary>
    TFLite = 3,
}

/// <summary>Detects a model's content type from its first bytes (docs/format.md, section 4).</summary>
internal static class ModelContentTypeDetector
{
    /// <summary>How many leading bytes detection looks at.</summary>
    public const int PrefixLength = 64 * 1024;

    /// <summary>
    /// Detects the content type from the first bytes of a model (up to <see cref="PrefixLength"/>) and its total length.
    /// </summary>
    public static ModelContentType Detect(ReadOnlySpan<byte> prefix, long totalLength)
    {
        if (prefix.Length >= 8 && prefix.Slice(4, 4).SequenceEqual("TFL3"u8))
        {
            return ModelContentType.TFLite;
        }

        if (prefix.Length >= 8 && prefix.Slice(4, 4).SequenceEqual("ORTM"u8))
        {
            return ModelContentType.Ort;
        }

        return LooksLikeOnnx(prefix[..(int)Math.Min(prefix.Length, PrefixLength)], totalLength)
            ? ModelContentType.Onnx
            : ModelContentType.Unknown;
    }

    /// <summary>The wire-format name used in JSON and by the CLI.</summary>
    public static string ToName(this ModelContentType type) => type switch
    {
        ModelContentType.Onnx => "onnx",
        ModelContentType.Ort => "ort",
        ModelContentType.TFLite => "tflite",
        _ => "unknown",
    };

    // Walks top-level protobuf fields: ir_version first, then only onnx.ModelProto fields with their wire types,
    // each length-delimited field fitting inside the model.
    private static bool LooksLikeOnnx(ReadOnlySpan<byte> data, long totalLength)
    {
        long position = 0;
        bool first = true;
        while (position < data.Length)
        {
            if (!TryReadVarint(data, ref position, out ulong key))
            {
                return !first; // the prefix ended inside a field key
            }

            ulong field = key >> 3;
            ulong wireType = key & 7;
            bool varintField = field is 1 or 5;
            bool lengthField = field is 2 or 3 or 4 or 6 or 7 or 8 or 14 or 20 or 25 or 26;
            if ((first && field != 1) || (varintField && wireType != 0) || (lengthField && wireType != 2) || !(varintField || lengthField))
            {
                return false;
            }

            if (!TryReadVarint(data, ref position, out ulong value))
            {
                return !first;
            }

            if (first && value is < 1 or > 255)
            {
                return false;
            }

            if (lengthField)
            {
                if (value > (ulong)(totalLength - position))
                {
                    return false;
                }

                position += (long)value;
            }

            first = false;
        }

        return !first;
    }

    private static bool TryReadVarint(ReadOnlySpan<byte> data, ref long position, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (position >= data.Length)
            {
                return false;
            }

            byte b = data[(int)position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }
}
