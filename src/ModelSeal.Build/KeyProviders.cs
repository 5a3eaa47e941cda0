using ModelSeal.Hpke;

namespace ModelSeal.Build;

/// <summary>Where the task gets the data key for one model (and the version to record).</summary>
internal interface IKeyProvider : IDisposable
{
    /// <summary>A key the caller disposes, and the version to record (the requested one, or the server's number).</summary>
    Task<(ModelKey Key, string Version)> GetKeyAsync(string modelId, string? version, CancellationToken cancellationToken);
}

/// <summary>One key from a key file seals every model.</summary>
internal sealed class KeyFileProvider(ModelKey key) : IKeyProvider
{
    public Task<(ModelKey Key, string Version)> GetKeyAsync(string modelId, string? version, CancellationToken cancellationToken)
    {
        // A copy per model: the caller disposes it.
        Span<byte> raw = stackalloc byte[ModelKey.SizeInBytes];
        try
        {
            key.Export(raw);
            return Task.FromResult((ModelKey.Import(raw, key.KeyId), version ?? throw new InvalidOperationException("A version is required with a key file.")));
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(raw);
        }
    }

    public void Dispose() => key.Dispose();
}

/// <summary>
/// Each model gets a new version on the key server, as <c>modelseal encrypt --server</c> does: the server generates
/// the data key and returns it sealed with HPKE to a publisher key pair that exists only in this process.
/// </summary>
internal sealed class KeyServerProvider(KeyServerAdminClient client) : IKeyProvider
{
    public async Task<(ModelKey Key, string Version)> GetKeyAsync(string modelId, string? version, CancellationToken cancellationToken)
    {
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        NewVersion answer = await client.AddVersionAsync(modelId, version, publisher.PublicKey.Encoded.ToArray(), cancellationToken).ConfigureAwait(false);
        try
        {
            ModelKey key = KeyRelease.Open(publisher, answer.Enc, answer.SealedKey, answer.ModelId, answer.Version, answer.KeyId, client.AdminSubject, answer.LeaseExpiresAt);
            return (key, answer.Version);
        }
        catch (HpkeOpenException)
        {
            throw new KeyServerException($"the key server's answer for {modelId} version {answer.Version} does not open with this build's publisher key (a proxy or another server answered?).");
        }
    }

    public void Dispose() => client.Dispose();
}
