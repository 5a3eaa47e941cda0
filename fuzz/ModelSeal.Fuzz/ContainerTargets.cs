using System.Buffers;
using System.IO.Pipelines;

namespace ModelSeal.Fuzz;

/// <summary>Harnesses of the core library's parsers: the header, the three ways to open a sealed model, key files.</summary>
internal static class ContainerTargets
{
    private static readonly DecryptOptions Sequential = new() { MaxDegreeOfParallelism = 1 };
    private static readonly Lazy<string> KeyFilePath = new(() => Path.Combine(Fixtures.ScratchDirectory("keyfile"), "key"));

    /// <summary>
    /// <see cref="SealedModelHeader.Parse"/> and <see cref="SealedModelHeader.ReadAsync"/> on the same bytes: both must
    /// fail with a format exception or agree on the header.
    /// </summary>
    public static void Header(byte[] data)
    {
        SealedModelHeader? parsed = null, read = null;
        try
        {
            parsed = SealedModelHeader.Parse(data);
            _ = parsed.ToString();
            _ = parsed.SealedLength + parsed.ChunkCount;
        }
        catch (SealedModelFormatException e)
        {
            Outcome.Caught(e);
        }

        try
        {
            using var stream = new MemoryStream(data, writable: false);
            read = SealedModelHeader.ReadAsync(stream).AsTask().GetAwaiter().GetResult();
            if (stream.Position != read.Length)
            {
                throw new InvalidOperationException($"ReadAsync left the stream at {stream.Position}, not after the {read.Length}-byte header.");
            }
        }
        catch (SealedModelFormatException e)
        {
            Outcome.Caught(e);
        }

        if ((parsed is null) != (read is null) || (parsed is not null && !parsed.Encoded.SequenceEqual(read!.Encoded)))
        {
            throw new InvalidOperationException("SealedModelHeader.Parse and ReadAsync disagree on this input.");
        }
    }

    /// <summary>
    /// Whole-model decryption: the in-memory overload, the stream overload on a seekable stream and on a forward-only
    /// one; and verification (no plaintext kept) on a forward-only stream. Documented failures: format, key and authentication exceptions; for the stream overload also
    /// NotSupportedException (a model larger than one array).
    /// </summary>
    public static void Model(byte[] data)
    {
        using ModelKey key = Fixtures.Key();
        ExpectDocumented(() => SealedModel.DecryptAsync(data, key, Sequential).GetAwaiter().GetResult().Dispose());
        ExpectDocumented(() => SealedModel.DecryptAsync(new MemoryStream(data, writable: false), key, Sequential).GetAwaiter().GetResult().Dispose());
        ExpectDocumented(() => SealedModel.VerifyAsync(ForwardOnly(data), key, Sequential).GetAwaiter().GetResult());
        try
        {
            ExpectDocumented(() => SealedModel.DecryptAsync(ForwardOnly(data), key, Sequential).GetAwaiter().GetResult().Dispose());
        }
        catch (NotSupportedException e)
        {
            Outcome.Caught(e);
            // Documented for the stream overload: the header declares more than Array.MaxLength bytes (finding 1).
        }
    }

    /// <summary><see cref="SealedModelStream"/>: opened, then read to its end in odd-sized pieces.</summary>
    public static void Stream(byte[] data)
    {
        using ModelKey key = Fixtures.Key();
        ExpectDocumented(() =>
        {
            using SealedModelStream model = SealedModel.OpenReadAsync(ForwardOnly(data), key).GetAwaiter().GetResult();
            byte[] buffer = new byte[7000];
            long total = 0;
            int read;
            while ((read = model.Read(buffer)) > 0)
            {
                total += read;
            }

            if (total != model.Length)
            {
                throw new InvalidOperationException($"The stream ended cleanly after {total} bytes, but the header says {model.Length}.");
            }
        });
    }

    /// <summary><see cref="SealedModelReader"/>: opened, then read at the start, in the middle, across the end and past it.</summary>
    public static void Reader(byte[] data)
    {
        using ModelKey key = Fixtures.Key();
        ExpectDocumented(() =>
        {
            using SealedModelReader reader = SealedModel.OpenRandomAccessAsync(new MemoryStream(data, writable: false), key).GetAwaiter().GetResult();
            byte[] buffer = new byte[20000];
            long[] positions = [0, reader.Length / 2, Math.Max(0, reader.Length - 1), reader.Length, reader.Length + 1];
            foreach (long position in positions)
            {
                int read = reader.Read(position, buffer);
                long expected = Math.Clamp(reader.Length - position, 0, buffer.Length);
                if (read != expected)
                {
                    throw new InvalidOperationException($"Read at {position} returned {read} bytes, expected {expected} (length {reader.Length}).");
                }
            }
        });
    }

    /// <summary><see cref="ModelSeal.KeyFile.Read"/> on an owner-only file with the input as content.</summary>
    public static void KeyFile(byte[] data)
    {
        string path = KeyFilePath.Value;
        Fixtures.WriteOwnerOnly(path, data);
        try
        {
            using ModelKey key = ModelSeal.KeyFile.Read(path);
            _ = key.ToString();
        }
        catch (ModelKeyException e)
        {
            Outcome.Caught(e);
        }
    }

    /// <summary>A read-only, non-seekable stream over <paramref name="data"/>: what a network or pipe source looks like.</summary>
    private static Stream ForwardOnly(byte[] data) => PipeReader.Create(new ReadOnlySequence<byte>(data)).AsStream();

    /// <summary>Runs <paramref name="open"/>; the failures documented for opening a sealed model are expected.</summary>
    private static void ExpectDocumented(Action open)
    {
        try
        {
            open();
        }
        catch (SealedModelFormatException e)
        {
            Outcome.Caught(e);
        }
        catch (ModelKeyException e)
        {
            Outcome.Caught(e);
        }
        catch (SealedModelAuthenticationException e)
        {
            Outcome.Caught(e);
        }
    }
}
