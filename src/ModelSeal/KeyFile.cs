using System.Security.Cryptography;
using System.Text;

namespace ModelSeal;

/// <summary>
/// Local key files for offline and development use (docs/format.md, section 6): a small text file holding a key id
/// and a 32-byte key, created with owner-only permissions. The key bytes are parsed without ever becoming a string.
/// </summary>
public static class KeyFile
{
    /// <summary>Largest accepted key file, in bytes.</summary>
    internal const int MaxSize = 4096;

    private const string FormatLine = "modelseal-key-v1";
    private const string Comment = "# ModelSeal data key. Secret: anyone holding this file can open models sealed with it.";

    /// <summary>Writes <paramref name="key"/> to <paramref name="path"/> atomically, owner-only on Unix.</summary>
    /// <exception cref="IOException">The file exists and <paramref name="overwrite"/> is false.</exception>
    public static void Write(string path, ModelKey key, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(key);
        string prefix = $"{Comment}\n{FormatLine}\nkey-id: {key.KeyId}\nkey: ";
        int prefixLength = Encoding.ASCII.GetByteCount(prefix);
        byte[] content = GC.AllocateArray<byte>(prefixLength + (2 * ModelKey.SizeInBytes) + 1, pinned: true);
        Span<byte> raw = stackalloc byte[ModelKey.SizeInBytes];
        try
        {
            Encoding.ASCII.GetBytes(prefix, content);
            key.Export(raw);
            if (!Convert.TryToHexStringLower(raw, content.AsSpan(prefixLength), out _))
            {
                throw new InvalidOperationException("Hex encoding of the key failed.");
            }

            content[^1] = (byte)'\n';
            using var file = AtomicFile.Create(path, overwrite, ownerOnly: true);
            file.Stream.Write(content);
            file.Commit();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(raw);
            CryptographicOperations.ZeroMemory(content);
        }
    }

    /// <summary>Reads a key file.</summary>
    /// <exception cref="ModelKeyException">The file is malformed, or readable or writable by other users.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static ModelKey Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (OwnerOnlyFiles.Exposure(path) is { } exposure)
        {
            throw new ModelKeyException($"The key file '{path}' is accessible by other users ({exposure}); a data key must be owner-only. Run: {OwnerOnlyFiles.Fix(path)}");
        }

        byte[] content = GC.AllocateArray<byte>(MaxSize + 1, pinned: true);
        try
        {
            int length;
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0))
            {
                length = stream.ReadAtLeast(content, content.Length, throwOnEndOfStream: false);
            }

            if (length > MaxSize)
            {
                throw Malformed(path, $"it is larger than {MaxSize} bytes");
            }

            return Parse(content.AsSpan(0, length), path);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
        }
    }

    private static ModelKey Parse(ReadOnlySpan<byte> content, string path)
    {
        int field = 0;
        string? keyId = null;
        Span<byte> raw = stackalloc byte[ModelKey.SizeInBytes];
        try
        {
            foreach (Range range in content.Split((byte)'\n'))
            {
                ReadOnlySpan<byte> line = content[range];
                if (line.IsEmpty || line[0] == (byte)'#')
                {
                    continue;
                }

                switch (field++)
                {
                    case 0 when line.SequenceEqual("modelseal-key-v1"u8):
                        break;
                    case 0:
                        throw Malformed(path, $"the first line must be '{FormatLine}'");
                    case 1 when line.StartsWith("key-id: "u8):
                        keyId = Encoding.ASCII.GetString(line["key-id: "u8.Length..]);
                        if (!Identifier.IsValid(keyId, Identifier.MaxIdLength))
                        {
                            throw Malformed(path, "its key id is not a valid identifier");
                        }

                        break;
                    case 1:
                        throw Malformed(path, "the second line must be 'key-id: <id>'");
                    case 2 when line.StartsWith("key: "u8) && line.Length == "key: "u8.Length + (2 * ModelKey.SizeInBytes):
                        if (Convert.FromHexString(line["key: "u8.Length..], raw, out _, out int written) != System.Buffers.OperationStatus.Done
                            || written != ModelKey.SizeInBytes)
                        {
                            throw Malformed(path, "its key is not 64 hexadecimal digits");
                        }

                        break;
                    case 2:
                        throw Malformed(path, "the third line must be 'key: <64 hexadecimal digits>'");
                    default:
                        throw Malformed(path, "it has content after the key line");
                }
            }

            if (field < 3)
            {
                throw Malformed(path, "it is incomplete (expected the format line, 'key-id:' and 'key:')");
            }

            return ModelKey.Import(raw, keyId!);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(raw);
        }
    }

    private static ModelKeyException Malformed(string path, string problem) =>
        new($"'{path}' is not a valid ModelSeal key file: {problem}. Create one with 'modelseal keygen --out FILE'.");
}
