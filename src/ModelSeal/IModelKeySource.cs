namespace ModelSeal;

/// <summary>
/// Where the data key of a sealed model comes from: a local key file, the key server (ModelSeal.Client), or an app's
/// own source. Loading code asks with the header it has read, so a source can pick the key by model, version and
/// key id. The caller disposes the returned key.
/// </summary>
public interface IModelKeySource
{
    /// <summary>Gets the key that opens the sealed model with this header.</summary>
    ValueTask<ModelKey> GetKeyAsync(SealedModelHeader header, CancellationToken cancellationToken = default);
}

/// <summary>A key source backed by a local key file (docs/format.md, section 6), read at each request.</summary>
public sealed class KeyFileSource(string path) : IModelKeySource
{
    /// <inheritdoc />
    public ValueTask<ModelKey> GetKeyAsync(SealedModelHeader header, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(header);
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(KeyFile.Read(path));
    }
}
