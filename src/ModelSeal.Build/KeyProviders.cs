using ModelSeal.Protocol;

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
/// Each model gets a new version on the key server, exactly as <c>modelseal encrypt --server</c> does (both use
/// <see cref="KeyServerAdminClient.PublishVersionAsync"/>): the server generates the data key and returns it sealed with
/// HPKE to a publisher key pair that exists only in this process; a model that does not exist yet is created.
/// </summary>
internal sealed class KeyServerProvider(KeyServerAdminClient client, string credential) : IKeyProvider
{
    public async Task<(ModelKey Key, string Version)> GetKeyAsync(string modelId, string? version, CancellationToken cancellationToken)
    {
        try
        {
            if (client.AdminSubject is null)
            {
                await client.LoginAdminAsync(credential, cancellationToken).ConfigureAwait(false);
            }

            return await client.PublishVersionAsync(modelId, version, cancellationToken).ConfigureAwait(false);
        }
        catch (KeyServerException e) when (e.Code == ProblemCodes.VersionExists)
        {
            throw new KeyServerException(KeyServerFailure.Refused, $"version '{version}' of '{modelId}' exists already on the key server at {client.Server}, and the server gives an existing version's key only to licensed devices. Give a new ModelVersion, or leave ModelVersion out so that the server numbers the versions.", e.Status, e.Code, e.Detail, e);
        }
        catch (KeyServerException e) when (e.Status == 401)
        {
            throw new KeyServerException(KeyServerFailure.Refused, $"{e.Message} Check the admin credential in the environment variable named by ModelSealAdminCredentialVariable.", e.Status, e.Code, e.Detail, e);
        }
    }

    public void Dispose() => client.Dispose();
}
