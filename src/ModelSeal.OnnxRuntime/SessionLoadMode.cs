namespace ModelSeal.OnnxRuntime;

/// <summary>How a sealed model was handed to ONNX Runtime.</summary>
public enum SessionLoadMode
{
    /// <summary>
    /// ONNX Runtime parsed the model into its own memory (<c>.onnx</c>); the decrypted buffer was zeroed as soon as the
    /// session existed.
    /// </summary>
    Copy = 0,

    /// <summary>
    /// ONNX Runtime reads the decrypted <c>.ort</c> buffer for the whole session (graph and initializers); the buffer stays
    /// pinned and alive until the session is disposed, then is zeroed.
    /// </summary>
    ZeroCopy = 1,
}
