using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;

namespace ModelSeal.OnnxRuntime;

/// <summary>
/// An ONNX Runtime session opened from a sealed model, together with whatever it must keep alive. In
/// <see cref="SessionLoadMode.ZeroCopy"/> mode (<c>.ort</c> models) it owns the pinned decrypted buffer that ONNX Runtime
/// reads for the whole session; <see cref="Dispose"/> disposes the session first and only then zeroes the buffer.
/// In <see cref="SessionLoadMode.Copy"/> mode (<c>.onnx</c>) the buffer was zeroed when the session was created and this
/// object owns only the session.
/// </summary>
/// <remarks>
/// Never dispose <see cref="Session"/> yourself and never keep it beyond this object: after <see cref="Dispose"/> a
/// zero-copy session's model bytes are zeros. Use the session from any thread as ONNX Runtime allows (concurrent
/// <c>Run</c> calls are supported), but not concurrently with <see cref="Dispose"/>.
/// </remarks>
public sealed class SealedOrtSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly DecryptedModel? _model;
    private readonly byte[]? _buffer;
    private readonly SessionOptions? _ownedOptions;
    private int _disposed;

    internal SealedOrtSession(InferenceSession session, SealedModelHeader header, DecryptedModel? model, SessionOptions? ownedOptions)
    {
        _session = session;
        Header = header;
        _model = model;
        _buffer = model?.DangerousGetArray();
        _ownedOptions = ownedOptions;
    }

    /// <summary>The ONNX Runtime session. Valid until this object is disposed; do not dispose it directly.</summary>
    /// <exception cref="ObjectDisposedException">This object was disposed.</exception>
    public InferenceSession Session
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            return _session;
        }
    }

    /// <summary>The header of the sealed model the session was loaded from.</summary>
    public SealedModelHeader Header { get; }

    /// <summary>How the model was handed to ONNX Runtime.</summary>
    public SessionLoadMode Mode => _model is null ? SessionLoadMode.Copy : SessionLoadMode.ZeroCopy;

    /// <summary>The decrypted buffer ONNX Runtime reads (zero-copy only), for tests; the reference outlives disposal.</summary>
    internal byte[]? BufferForTesting => _buffer;

    /// <summary>Runs inference on the session (see <see cref="InferenceSession.Run(IReadOnlyCollection{NamedOnnxValue})"/>).</summary>
    /// <returns>The outputs; the caller disposes them.</returns>
    public IDisposableReadOnlyCollection<DisposableNamedOnnxValue> Run(IReadOnlyCollection<NamedOnnxValue> inputs) => Session.Run(inputs);

    /// <summary>Disposes the session, then zeroes and releases the decrypted buffer (if any). Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Order matters: ONNX Runtime may read the buffer until its session is gone.
        _session.Dispose();
        _model?.Dispose();
        _ownedOptions?.Dispose();
    }

    /// <summary>Test hook: zeroes the buffer while the session is still alive, to show the hazard.</summary>
    internal void ZeroBufferWhileAliveForTesting()
    {
        if (_buffer is not null)
        {
            CryptographicOperations.ZeroMemory(_buffer);
        }
    }
}
