using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;

namespace ModelSeal.OnnxRuntime;

/// <summary>
/// Opens sealed models in ONNX Runtime. All work (reading the header, asking the key source, decrypting, creating the
/// session) runs on the thread pool, never on the caller's thread or synchronization context. The key is disposed as
/// soon as decryption is done; the decrypted buffer is zeroed as soon as ONNX Runtime no longer needs it.
/// </summary>
/// <remarks>
/// <para>
/// <b>Copy mode</b> (<see cref="CreateAsync(Stream, IModelKeySource, SessionOptions?, IProgress{ModelSealProgress}?, CancellationToken)"/>,
/// for <c>.onnx</c>): ONNX Runtime parses the model into its own memory, so the decrypted buffer is zeroed right after
/// the <see cref="InferenceSession"/> constructor returns. Peak memory is about twice the model size.
/// </para>
/// <para>
/// <b>Zero-copy mode</b> (<see cref="CreateZeroCopyAsync(Stream, IModelKeySource, SessionOptions?, IProgress{ModelSealProgress}?, CancellationToken)"/>,
/// for <c>.ort</c>): ONNX Runtime reads the decrypted buffer for the whole session
/// (<c>session.use_ort_model_bytes_directly</c>, <c>session.use_ort_model_bytes_for_initializers</c>,
/// <c>session.disable_prepacking</c>). The returned <see cref="SealedOrtSession"/> keeps the buffer pinned and alive and
/// zeroes it only after the session is disposed. Peak memory is about the model size.
/// </para>
/// <para>
/// Other runtimes (TensorFlow Lite, Unity Sentis, …): use <see cref="SealedModel.DecryptAsync(Stream, ModelKey, DecryptOptions?, IProgress{ModelSealProgress}?, CancellationToken)"/> and hand
/// <see cref="DecryptedModel.DangerousGetArray"/>, <see cref="DecryptedModel.Span"/> or
/// <see cref="DecryptedModel.OpenStream"/> to the runtime. Dispose the <see cref="DecryptedModel"/> once the runtime has
/// copied the model; if the runtime keeps referring to the bytes, keep the <see cref="DecryptedModel"/> alive exactly as
/// long as the runtime's object and dispose it after that object. See docs/runtimes.md.
/// </para>
/// </remarks>
public static class SealedInferenceSession
{
    /// <summary>Session configuration entries that make ONNX Runtime use the caller's <c>.ort</c> bytes in place.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ZeroCopyConfigEntries { get; } =
    [
        new("session.use_ort_model_bytes_directly", "1"),
        new("session.use_ort_model_bytes_for_initializers", "1"),
        new("session.disable_prepacking", "1"),
    ];

    /// <summary>
    /// Test hook: observes the decrypted array in copy mode, after the session was created and the array zeroed.
    /// Async-local so parallel tests do not see each other's buffers.
    /// </summary>
    internal static AsyncLocal<Action<byte[]>?> CopyModeBufferObserverForTesting { get; } = new();

    private enum Request
    {
        Copy,
        ZeroCopy,
        Auto,
    }

    /// <summary>
    /// Decrypts a sealed model and creates an <see cref="InferenceSession"/> from a copy (copy mode); the decrypted
    /// buffer is zeroed before this returns. Suitable for <c>.onnx</c> (and <c>.ort</c> without zero-copy).
    /// </summary>
    /// <param name="sealedModel">The sealed model, positioned at its start. Read front to back; need not be seekable; not disposed.</param>
    /// <param name="keys">Where the data key comes from; asked once with the model's header. The key is disposed after use.</param>
    /// <param name="options">ONNX Runtime session options, or <see langword="null"/> for the defaults. Not disposed.</param>
    /// <param name="progress">Decryption progress.</param>
    /// <param name="cancellationToken">Cancels reading, key retrieval and decryption (not the session constructor itself).</param>
    /// <returns>The session; the caller disposes it.</returns>
    /// <exception cref="SealedModelFormatException">Not a sealed model, unsupported version or malformed header.</exception>
    /// <exception cref="ModelKeyException">The key's id is not the one the model names.</exception>
    /// <exception cref="SealedModelAuthenticationException">Wrong key, or the file was altered or truncated.</exception>
    /// <exception cref="NotSupportedException">The model is TensorFlow Lite, which ONNX Runtime cannot load.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejected the decrypted model.</exception>
    public static Task<InferenceSession> CreateAsync(Stream sealedModel, IModelKeySource keys, SessionOptions? options = null, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sealedModel);
        ArgumentNullException.ThrowIfNull(keys);
        return Task.Run(() => OpenCopyAsync(sealedModel, keys, options, progress, cancellationToken), cancellationToken);
    }

    /// <summary>Opens the sealed model file at <paramref name="path"/> in copy mode; see <see cref="CreateAsync(Stream, IModelKeySource, SessionOptions?, IProgress{ModelSealProgress}?, CancellationToken)"/>.</summary>
    /// <param name="path">Path of the sealed model file.</param>
    /// <param name="keys">Where the data key comes from.</param>
    /// <param name="options">ONNX Runtime session options, or <see langword="null"/> for the defaults. Not disposed.</param>
    /// <param name="progress">Decryption progress.</param>
    /// <param name="cancellationToken">Cancels reading, key retrieval and decryption.</param>
    /// <returns>The session; the caller disposes it.</returns>
    public static Task<InferenceSession> CreateAsync(string path, IModelKeySource keys, SessionOptions? options = null, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(keys);
        return Task.Run(
            async () =>
            {
                FileStream file = OpenFile(path);
                await using (file.ConfigureAwait(false))
                {
                    return await OpenCopyAsync(file, keys, options, progress, cancellationToken).ConfigureAwait(false);
                }
            },
            cancellationToken);
    }

    /// <summary>
    /// Decrypts a sealed <c>.ort</c> model into one pinned buffer and creates a session that reads that buffer in place
    /// (zero-copy). The returned object owns both; disposing it disposes the session, then zeroes the buffer.
    /// </summary>
    /// <param name="sealedModel">The sealed model, positioned at its start. Read front to back; need not be seekable; not disposed.</param>
    /// <param name="keys">Where the data key comes from; asked once with the model's header. The key is disposed after use.</param>
    /// <param name="options">
    /// ONNX Runtime session options, or <see langword="null"/> for the defaults. The entries in
    /// <see cref="ZeroCopyConfigEntries"/> are added to them. The caller keeps ownership and must not dispose them before
    /// the returned object.
    /// </param>
    /// <param name="progress">Decryption progress.</param>
    /// <param name="cancellationToken">Cancels reading, key retrieval and decryption.</param>
    /// <returns>The owning session object; the caller disposes it.</returns>
    /// <exception cref="NotSupportedException">The sealed model's content type is not ORT (checked from the header, before any key is requested).</exception>
    /// <exception cref="SealedModelFormatException">Not a sealed model, unsupported version or malformed header.</exception>
    /// <exception cref="ModelKeyException">The key's id is not the one the model names.</exception>
    /// <exception cref="SealedModelAuthenticationException">Wrong key, or the file was altered or truncated.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejected the decrypted model.</exception>
    public static Task<SealedOrtSession> CreateZeroCopyAsync(Stream sealedModel, IModelKeySource keys, SessionOptions? options = null, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sealedModel);
        ArgumentNullException.ThrowIfNull(keys);
        return Task.Run(() => OpenAsync(sealedModel, keys, options, progress, Request.ZeroCopy, cancellationToken), cancellationToken);
    }

    /// <summary>Opens the sealed <c>.ort</c> model file at <paramref name="path"/> zero-copy; see <see cref="CreateZeroCopyAsync(Stream, IModelKeySource, SessionOptions?, IProgress{ModelSealProgress}?, CancellationToken)"/>.</summary>
    /// <param name="path">Path of the sealed model file.</param>
    /// <param name="keys">Where the data key comes from.</param>
    /// <param name="options">ONNX Runtime session options (the zero-copy entries are added), or <see langword="null"/>.</param>
    /// <param name="progress">Decryption progress.</param>
    /// <param name="cancellationToken">Cancels reading, key retrieval and decryption.</param>
    /// <returns>The owning session object; the caller disposes it.</returns>
    public static Task<SealedOrtSession> CreateZeroCopyAsync(string path, IModelKeySource keys, SessionOptions? options = null, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(keys);
        return OpenFileAsync(path, keys, options, progress, Request.ZeroCopy, cancellationToken);
    }

    /// <summary>
    /// Opens a sealed model the best way for its content type (read from the header): copy mode for ONNX
    /// (<see cref="SessionLoadMode.Copy"/>), zero-copy for ORT (<see cref="SessionLoadMode.ZeroCopy"/>).
    /// </summary>
    /// <param name="sealedModel">The sealed model, positioned at its start. Read front to back; need not be seekable; not disposed.</param>
    /// <param name="keys">Where the data key comes from; asked once with the model's header. The key is disposed after use.</param>
    /// <param name="options">
    /// ONNX Runtime session options, or <see langword="null"/>. For ORT models the zero-copy entries are added; the caller
    /// must not dispose them before the returned object.
    /// </param>
    /// <param name="progress">Decryption progress.</param>
    /// <param name="cancellationToken">Cancels reading, key retrieval and decryption.</param>
    /// <returns>The owning session object; the caller disposes it.</returns>
    /// <exception cref="NotSupportedException">
    /// The model is TensorFlow Lite or of unknown type: decrypt it with <see cref="SealedModel.DecryptAsync(Stream, ModelKey, DecryptOptions?, IProgress{ModelSealProgress}?, CancellationToken)"/> and hand the
    /// bytes to the right runtime (docs/runtimes.md). Thrown from the header, before any key is requested.
    /// </exception>
    /// <exception cref="SealedModelFormatException">Not a sealed model, unsupported version or malformed header.</exception>
    /// <exception cref="ModelKeyException">The key's id is not the one the model names.</exception>
    /// <exception cref="SealedModelAuthenticationException">Wrong key, or the file was altered or truncated.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejected the decrypted model.</exception>
    public static Task<SealedOrtSession> LoadAsync(Stream sealedModel, IModelKeySource keys, SessionOptions? options = null, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sealedModel);
        ArgumentNullException.ThrowIfNull(keys);
        return Task.Run(() => OpenAsync(sealedModel, keys, options, progress, Request.Auto, cancellationToken), cancellationToken);
    }

    /// <summary>Opens the sealed model file at <paramref name="path"/>; see <see cref="LoadAsync(Stream, IModelKeySource, SessionOptions?, IProgress{ModelSealProgress}?, CancellationToken)"/>.</summary>
    /// <param name="path">Path of the sealed model file.</param>
    /// <param name="keys">Where the data key comes from.</param>
    /// <param name="options">ONNX Runtime session options, or <see langword="null"/>.</param>
    /// <param name="progress">Decryption progress.</param>
    /// <param name="cancellationToken">Cancels reading, key retrieval and decryption.</param>
    /// <returns>The owning session object; the caller disposes it.</returns>
    public static Task<SealedOrtSession> LoadAsync(string path, IModelKeySource keys, SessionOptions? options = null, IProgress<ModelSealProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(keys);
        return OpenFileAsync(path, keys, options, progress, Request.Auto, cancellationToken);
    }

    private static Task<SealedOrtSession> OpenFileAsync(string path, IModelKeySource keys, SessionOptions? options, IProgress<ModelSealProgress>? progress, Request request, CancellationToken cancellationToken) =>
        Task.Run(
            async () =>
            {
                FileStream file = OpenFile(path);
                await using (file.ConfigureAwait(false))
                {
                    return await OpenAsync(file, keys, options, progress, request, cancellationToken).ConfigureAwait(false);
                }
            },
            cancellationToken);

    private static FileStream OpenFile(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.Asynchronous | FileOptions.SequentialScan);

    private static async Task<InferenceSession> OpenCopyAsync(Stream source, IModelKeySource keys, SessionOptions? options, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        long start = source.CanSeek ? source.Position : -1;
        SealedModelHeader header = await SealedModelHeader.ReadAsync(source, cancellationToken).ConfigureAwait(false);
        _ = ChooseMode(header.ContentType, Request.Copy);
        using ModelKey key = await GetKeyAsync(keys, header, cancellationToken).ConfigureAwait(false);
        Stream replay = FromTheStart(source, start, header);
        return await DecryptAndCreateCopyAsync(replay, key, options, progress, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<SealedOrtSession> OpenAsync(Stream source, IModelKeySource keys, SessionOptions? options, IProgress<ModelSealProgress>? progress, Request request, CancellationToken cancellationToken)
    {
        long start = source.CanSeek ? source.Position : -1;
        SealedModelHeader header = await SealedModelHeader.ReadAsync(source, cancellationToken).ConfigureAwait(false);
        SessionLoadMode mode = ChooseMode(header.ContentType, request);
        using ModelKey key = await GetKeyAsync(keys, header, cancellationToken).ConfigureAwait(false);
        Stream replay = FromTheStart(source, start, header);
        if (mode == SessionLoadMode.Copy)
        {
            InferenceSession session = await DecryptAndCreateCopyAsync(replay, key, options, progress, cancellationToken).ConfigureAwait(false);
            return new SealedOrtSession(session, header, model: null, ownedOptions: null);
        }

        return await DecryptAndCreateZeroCopyAsync(replay, key, options, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The sealed model from its first byte again, now that its header chose the key: a seekable source is rewound
    /// (a file then takes the core's parallel positional-read path); any other replays the header already read before
    /// the rest of the stream. Owned by the caller of the public method, like <paramref name="source"/>.
    /// </summary>
    private static Stream FromTheStart(Stream source, long start, SealedModelHeader header)
    {
        if (start < 0)
        {
            return new HeaderReplayStream(header.Encoded.ToArray(), source);
        }

        source.Position = start;
        return source;
    }

    private static SessionLoadMode ChooseMode(ModelContentType contentType, Request request)
    {
        switch (request)
        {
            case Request.ZeroCopy when contentType != ModelContentType.Ort:
                throw new NotSupportedException(
                    $"Zero-copy loading needs an ORT-format model (.ort); this sealed model is '{contentType}'. " +
                    "Use CreateAsync (copy mode) for .onnx models, or LoadAsync to choose by content type.");
            case Request.ZeroCopy:
                return SessionLoadMode.ZeroCopy;
            case Request.Copy when contentType == ModelContentType.TFLite:
                throw NotOnnxRuntime(contentType);
            case Request.Copy:
                return SessionLoadMode.Copy;
            default:
                return contentType switch
                {
                    ModelContentType.Onnx => SessionLoadMode.Copy,
                    ModelContentType.Ort => SessionLoadMode.ZeroCopy,
                    _ => throw NotOnnxRuntime(contentType),
                };
        }
    }

    private static NotSupportedException NotOnnxRuntime(ModelContentType contentType) =>
        new($"ONNX Runtime cannot load this sealed model: its content type is '{contentType}'. " +
            "Decrypt it with SealedModel.DecryptAsync and hand DecryptedModel.DangerousGetArray(), Span or OpenStream() " +
            "to the runtime that reads it (for example TensorFlow Lite); keep the DecryptedModel alive while that runtime " +
            "reads the bytes and dispose it afterwards (see docs/runtimes.md).");

    private static async ValueTask<ModelKey> GetKeyAsync(IModelKeySource keys, SealedModelHeader header, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ModelKey? key = await keys.GetKeyAsync(header, cancellationToken).ConfigureAwait(false);
        if (key is null)
        {
            throw new InvalidOperationException($"The key source {keys.GetType().Name} returned no key for model '{header.ModelId}'.");
        }

        if (cancellationToken.IsCancellationRequested)
        {
            key.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
        }

        return key;
    }

    // Separate, non-inlined methods so no caller frame holds the plaintext array; the buffer is zeroed in finally.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task<InferenceSession> DecryptAndCreateCopyAsync(Stream source, ModelKey key, SessionOptions? options, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        DecryptedModel model = await SealedModel.DecryptAsync(source, key, options: null, progress, cancellationToken).ConfigureAwait(false);
        byte[] buffer = model.DangerousGetArray();
        try
        {
            return CreateSession(buffer, options);
        }
        finally
        {
            model.Dispose();
            CopyModeBufferObserverForTesting.Value?.Invoke(buffer);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task<SealedOrtSession> DecryptAndCreateZeroCopyAsync(Stream source, ModelKey key, SessionOptions? options, IProgress<ModelSealProgress>? progress, CancellationToken cancellationToken)
    {
        SessionOptions? owned = options is null ? new SessionOptions() : null;
        SessionOptions effective = options ?? owned!;
        DecryptedModel? model = null;
        try
        {
            foreach (KeyValuePair<string, string> entry in ZeroCopyConfigEntries)
            {
                effective.AddSessionConfigEntry(entry.Key, entry.Value);
            }

            model = await SealedModel.DecryptAsync(source, key, options: null, progress, cancellationToken).ConfigureAwait(false);
            InferenceSession session = CreateSession(model.DangerousGetArray(), effective);
            return new SealedOrtSession(session, model.Header, model, owned);
        }
        catch
        {
            model?.Dispose();
            owned?.Dispose();
            throw;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static InferenceSession CreateSession(byte[] model, SessionOptions? options) =>
        options is null ? new InferenceSession(model) : new InferenceSession(model, options);
}
