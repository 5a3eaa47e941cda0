namespace ModelSeal;

/// <summary>
/// Progress of a long operation: model (plaintext) bytes processed so far out of the total. Operations report it
/// in order, one report at a time (never concurrently), from a thread-pool thread.
/// </summary>
/// <param name="BytesDone">Bytes processed.</param>
/// <param name="TotalBytes">Bytes in all.</param>
public readonly record struct ModelSealProgress(long BytesDone, long TotalBytes);
