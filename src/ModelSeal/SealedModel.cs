using System.Security.Cryptography;

namespace ModelSeal;

/// <summary>What to record when sealing a model.</summary>
public sealed record SealOptions
{
    /// <summary>The model id (identifier, 1–128 characters).</summary>
    public required string ModelId { get; init; }

    /// <summary>The model version (identifier, 1–64 characters).</summary>
    public required string ModelVersion { get; init; }

    /// <summary>The content type to record; null detects it from the model bytes.</summary>
    public ModelContentType? ContentType { get; init; }

    /// <summary>The sealing time to record; null records none. Defaults to now.</summary>
    public DateTimeOffset? SealedAt { get; init; } = DateTimeOffset.UtcNow;
}

/// <summary>How to decrypt.</summary>
public sealed record DecryptOptions
{
    /// <summary>The default options.</summary>
    public static DecryptOptions Default { get; } = new();

    /// <summary>How many threads decrypt chunks at once (1 = sequential). Defaults to the processor count.</summary>
    public int MaxDegreeOfParallelism { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// Seals models and opens sealed models (docs/format.md). Every method that decrypts releases plaintext only after
/// it has been authenticated, and runs its work on the thread pool, never on the caller's synchronization context.
/// </summary>
public static class SealedModel
{
    /// <summary>The customary file extension of sealed models.</summary>
    public const string FileExtension = ".mseal";

    /// <summary>
    /// Seals the model read from <paramref name="model"/> (from its current position to its end; the stream must be
    /// seekable, because the header that precedes the payload records the model's length) into
    /// <paramref name="destination"/>.
    /// </summary>
    /// <returns>The header written.</returns>
    public static Task<SealedModelHeader> SealAsync(Stream model, Stream destination, ModelKey key, SealOptions options, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        if (!model.CanSeek)
        {
            throw new ArgumentException("The model stream must be seekable: its length goes into the header before the payload.", nameof(model));
        }

        return Task.Run(
            async () =>
            {
                long start = model.Position;
                long length = model.Length - start;
                ModelContentType contentType = options.ContentType ?? await DetectAsync(model, length, cancellationToken).ConfigureAwait(false);
                model.Position = start;
                var header = SealedModelHeader.Create(options.ModelId, options.ModelVersion, key.KeyId, contentType, length, options.SealedAt);
                await destination.WriteAsync(header.EncodedArray, cancellationToken).ConfigureAwait(false);
                byte[] salt = RandomNumberGenerator.GetBytes(Cobblestone.SaltSize);
                await Payload.EncryptAsync(model, length, destination, key, header.EncodedArray, salt, progress, cancellationToken).ConfigureAwait(false);
                await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
                return header;
            },
            cancellationToken);
    }

    /// <summary>
    /// Decrypts a whole sealed model into one pinned buffer. Reads <paramref name="source"/> once, front to back (it need
    /// not be seekable), in large pieces through small reused buffers, decrypting chunks in parallel.
    /// Returns only when every chunk verified and the file ended where the header said; otherwise the buffer is
    /// zeroed and an exception is thrown.
    /// </summary>
    /// <exception cref="SealedModelFormatException">Not a sealed model, unsupported version or malformed header.</exception>
    /// <exception cref="ModelKeyException">The key's id is not the one the model names.</exception>
    /// <exception cref="SealedModelAuthenticationException">Wrong key, or the file was altered or truncated.</exception>
    /// <exception cref="NotSupportedException">The header declares a model larger than one array holds
    /// (<see cref="Array.MaxLength"/> bytes); open it with <see cref="OpenReadAsync"/> instead. On a seekable source a
    /// header that does not match the file's length fails authentication first.</exception>
    public static Task<DecryptedModel> DecryptAsync(Stream source, ModelKey key, DecryptOptions? options = null, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(key);
        int parallelism = (options ?? DecryptOptions.Default).MaxDegreeOfParallelism;
        return Task.Run(
            async () =>
            {
                SealedModelHeader header = await ReadHeaderForKeyAsync(source, key, cancellationToken).ConfigureAwait(false);
                byte[] plaintext = await Payload.DecryptAsync(source, key, header.EncodedArray, header.PlaintextLength, parallelism, progress, cancellationToken).ConfigureAwait(false);
                return new DecryptedModel(header, plaintext);
            },
            cancellationToken);
    }

    /// <summary>
    /// Decrypts a whole sealed model that is already in memory (an asset loaded into a byte array, a downloaded
    /// buffer) into one pinned buffer. Nothing is copied or read: the workers decrypt straight from
    /// <paramref name="sealedModel"/>, which must not change until the task completes. All or nothing, like the
    /// stream overload.
    /// </summary>
    /// <exception cref="SealedModelFormatException">Not a sealed model, unsupported version or malformed header.</exception>
    /// <exception cref="ModelKeyException">The key's id is not the one the model names.</exception>
    /// <exception cref="SealedModelAuthenticationException">Wrong key, or the data was altered, truncated or extended.</exception>
    public static Task<DecryptedModel> DecryptAsync(ReadOnlyMemory<byte> sealedModel, ModelKey key, DecryptOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        int parallelism = (options ?? DecryptOptions.Default).MaxDegreeOfParallelism;
        return Task.Run(
            () =>
            {
                SealedModelHeader header = ParseHeaderForKey(sealedModel.Span, key);
                ReadOnlyMemory<byte> payload = sealedModel[header.Length..];
                if (payload.Length != header.PayloadLength)
                {
                    throw new SealedModelAuthenticationException(); // before a model-sized buffer is allocated
                }

                Payload.CheckWholeModelLength(header.PlaintextLength);
                byte[] plaintext = GC.AllocateUninitializedArray<byte>((int)header.PlaintextLength, pinned: true);
                DecryptInto(payload, plaintext, header, key, parallelism, cancellationToken);
                return new DecryptedModel(header, plaintext);
            },
            cancellationToken);
    }

    /// <summary>
    /// Decrypts a whole sealed model that is in memory into the caller's buffer: the model's plaintext goes to the first
    /// <see cref="SealedModelHeader.PlaintextLength"/> bytes of <paramref name="destination"/>, the rest is left as it
    /// is. For applications that manage the model's memory themselves (a reused buffer, native or pinned memory).
    /// All or nothing: on any failure those bytes are zeroed before the exception leaves. The caller owns the
    /// plaintext and must zero it when done (<see cref="CryptographicOperations.ZeroMemory(Span{byte})"/>).
    /// </summary>
    /// <returns>The header of the decrypted model.</returns>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than the model.</exception>
    /// <exception cref="SealedModelFormatException">Not a sealed model, unsupported version or malformed header.</exception>
    /// <exception cref="ModelKeyException">The key's id is not the one the model names.</exception>
    /// <exception cref="SealedModelAuthenticationException">Wrong key, or the data was altered, truncated or extended.</exception>
    public static Task<SealedModelHeader> DecryptAsync(ReadOnlyMemory<byte> sealedModel, Memory<byte> destination, ModelKey key, DecryptOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        int parallelism = (options ?? DecryptOptions.Default).MaxDegreeOfParallelism;
        return Task.Run(
            () =>
            {
                SealedModelHeader header = ParseHeaderForKey(sealedModel.Span, key);
                if (destination.Length < header.PlaintextLength)
                {
                    throw new ArgumentException(
                        $"The destination holds {destination.Length} bytes, but the model ({header.ModelId} {header.ModelVersion}) is {header.PlaintextLength} bytes.",
                        nameof(destination));
                }

                DecryptInto(sealedModel[header.Length..], destination[..(int)header.PlaintextLength], header, key, parallelism, cancellationToken);
                return header;
            },
            cancellationToken);
    }

    /// <summary>
    /// Decrypts a sealed file into a plaintext file with every thread, without a model-sized buffer. Not public:
    /// on failure <paramref name="destination"/> holds partial plaintext, so only a caller that writes to a temporary
    /// file it deletes on failure (<c>modelseal decrypt</c>) may use it.
    /// </summary>
    internal static Task<SealedModelHeader> DecryptToFileAsync(FileStream source, FileStream destination, ModelKey key, DecryptOptions? options, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(key);
        int parallelism = (options ?? DecryptOptions.Default).MaxDegreeOfParallelism;
        return Task.Run(
            async () =>
            {
                SealedModelHeader header = await ReadHeaderForKeyAsync(source, key, cancellationToken).ConfigureAwait(false);
                await Payload.DecryptToFileAsync(source, key, header.EncodedArray, header.PlaintextLength, destination, parallelism, progress, cancellationToken).ConfigureAwait(false);
                return header;
            },
            cancellationToken);
    }

    /// <summary>
    /// Does ahead of time what the first decryption in a process otherwise pays for: loading the platform's crypto
    /// library (OpenSSL on Linux) and compiling the decryption path, tens of milliseconds in a fresh process
    /// (docs/performance.md). Optional: call it once at start-up, off the UI thread, so that the first model opens as
    /// fast as later ones. It seals and opens a small throw-away message with a throw-away key in memory; no file,
    /// no key of yours.
    /// </summary>
    public static Task WarmUpAsync(CancellationToken cancellationToken = default) =>
        Task.Run(
            async () =>
            {
                using ModelKey key = ModelKey.Generate("warm-up");
                using var sealedModel = new MemoryStream();
                byte[] message = new byte[(2 * Cobblestone.ChunkSize) + 1];
                await SealAsync(new MemoryStream(message), sealedModel, key, new SealOptions { ModelId = "warm-up", ModelVersion = "1", ContentType = ModelContentType.Unknown }, cancellationToken: cancellationToken).ConfigureAwait(false);
                (await DecryptAsync(sealedModel.GetBuffer().AsMemory(0, (int)sealedModel.Length), key, cancellationToken: cancellationToken).ConfigureAwait(false)).Dispose();
                sealedModel.Position = 0;
                (await DecryptAsync(sealedModel, key, cancellationToken: cancellationToken).ConfigureAwait(false)).Dispose();
            },
            cancellationToken);

    /// <summary>Authenticates every chunk of a sealed model and keeps no plaintext.</summary>
    /// <returns>The header of the verified model.</returns>
    /// <exception cref="SealedModelFormatException">Not a sealed model, unsupported version or malformed header.</exception>
    /// <exception cref="ModelKeyException">The key's id is not the one the model names.</exception>
    /// <exception cref="SealedModelAuthenticationException">Wrong key, or the file was altered or truncated.</exception>
    public static Task<SealedModelHeader> VerifyAsync(Stream source, ModelKey key, DecryptOptions? options = null, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(key);
        int parallelism = (options ?? DecryptOptions.Default).MaxDegreeOfParallelism;
        return Task.Run(
            async () =>
            {
                SealedModelHeader header = await ReadHeaderForKeyAsync(source, key, cancellationToken).ConfigureAwait(false);
                await Payload.VerifyAsync(source, key, header.EncodedArray, header.PlaintextLength, parallelism, progress, cancellationToken).ConfigureAwait(false);
                return header;
            },
            cancellationToken);
    }

    /// <summary>
    /// Opens a sealed model as a forward-only stream (for non-seekable sources and models too large for memory).
    /// The header and key commitment are checked before this returns; chunks are checked as they are read. See the
    /// remarks on <see cref="SealedModelStream"/>: the data is trustworthy only once the stream has ended cleanly.
    /// </summary>
    public static Task<SealedModelStream> OpenReadAsync(Stream source, ModelKey key, bool leaveOpen = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(key);
        return Task.Run(
            async () =>
            {
                SealedModelHeader header = await ReadHeaderForKeyAsync(source, key, cancellationToken).ConfigureAwait(false);
                ChunkCipher cipher = await Payload.OpenAsync(source, key, header.EncodedArray, cancellationToken).ConfigureAwait(false);
                return new SealedModelStream(source, cipher, header, ownsSource: !leaveOpen);
            },
            cancellationToken);
    }

    /// <summary>
    /// Opens a sealed model in a seekable stream for random access. The file length and the final chunk are
    /// authenticated before this returns; each read authenticates the chunks it covers.
    /// </summary>
    public static Task<SealedModelReader> OpenRandomAccessAsync(Stream source, ModelKey key, bool leaveOpen = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(key);
        if (!source.CanSeek)
        {
            throw new ArgumentException("Random access needs a seekable stream; use OpenReadAsync for a forward-only one.", nameof(source));
        }

        return Task.Run(
            async () =>
            {
                source.Position = 0;
                SealedModelHeader header = await ReadHeaderForKeyAsync(source, key, cancellationToken).ConfigureAwait(false);
                return SealedModelReader.Open(source, header.Length, key, header.Encoded, header, ownsSource: !leaveOpen);
            },
            cancellationToken);
    }

    /// <summary>
    /// Reads the header and checks that the key is the one it names; for a seekable source also that the payload has
    /// the length the header implies (so a truncated or extended file fails before anything is allocated).
    /// </summary>
    private static async Task<SealedModelHeader> ReadHeaderForKeyAsync(Stream source, ModelKey key, CancellationToken cancellationToken)
    {
        SealedModelHeader header = await SealedModelHeader.ReadAsync(source, cancellationToken).ConfigureAwait(false);
        CheckKey(header, key);
        return !source.CanSeek || source.Length - source.Position == header.PayloadLength
            ? header
            : throw new SealedModelAuthenticationException();
    }

    private static SealedModelHeader ParseHeaderForKey(ReadOnlySpan<byte> sealedModel, ModelKey key)
    {
        SealedModelHeader header = SealedModelHeader.Parse(sealedModel);
        CheckKey(header, key);
        return header;
    }

    /// <summary>Decrypts an in-memory payload into <paramref name="plaintext"/> (exactly the model's length); zeroes it on failure.</summary>
    private static void DecryptInto(ReadOnlyMemory<byte> payload, Memory<byte> plaintext, SealedModelHeader header, ModelKey key, int parallelism, CancellationToken cancellationToken)
    {
        try
        {
            Payload.DecryptInMemory(payload, key, header.EncodedArray, header.PlaintextLength, plaintext, parallelism, cancellationToken);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(plaintext.Span);
            throw;
        }
    }

    private static void CheckKey(SealedModelHeader header, ModelKey key)
    {
        if (header.KeyId != key.KeyId)
        {
            throw new ModelKeyException($"This model is sealed with key '{header.KeyId}', but the key given is '{key.KeyId}'.");
        }
    }

    private static async Task<ModelContentType> DetectAsync(Stream model, long length, CancellationToken cancellationToken)
    {
        byte[] prefix = new byte[(int)Math.Min(length, ModelContentTypeDetector.PrefixLength)];
        try
        {
            int read = await model.ReadAtLeastAsync(prefix, prefix.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            return ModelContentTypeDetector.Detect(prefix.AsSpan(0, read), length);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prefix);
        }
    }
}
