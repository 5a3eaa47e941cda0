using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ModelSeal.Client;

/// <summary>
/// A key server's release answer kept for offline use (docs/protocol.md section 2, Leases): the data key sealed with
/// HPKE to the device key, useless without the device's private key. The expiry is authenticated by HPKE, so editing
/// it makes the lease fail to open.
/// </summary>
/// <param name="ModelId">The model id.</param>
/// <param name="Version">The concrete model version.</param>
/// <param name="KeyId">The key id.</param>
/// <param name="Subject">The token subject the key was sealed for.</param>
/// <param name="Enc">The HPKE encapsulated key, base64url as received.</param>
/// <param name="SealedKey">The sealed data key, base64url as received.</param>
/// <param name="LeaseExpiresAt">Until when the key may be used offline.</param>
public sealed record ModelLease(string ModelId, string Version, string KeyId, string Subject, string Enc, string SealedKey, DateTimeOffset LeaseExpiresAt);

/// <summary>Stores offline leases, one per (model id, version, key id).</summary>
public interface ILeaseCache
{
    /// <summary>The cached lease for the model version and key, or null.</summary>
    ValueTask<ModelLease?> GetAsync(string modelId, string version, string keyId, CancellationToken cancellationToken = default);

    /// <summary>Stores (or replaces) a lease.</summary>
    ValueTask StoreAsync(ModelLease lease, CancellationToken cancellationToken = default);

    /// <summary>Removes the lease for the model version and key, if any.</summary>
    ValueTask RemoveAsync(string modelId, string version, string keyId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes every lease released to <paramref name="subject"/> (a token's <c>sub</c>, <see cref="ModelLease.Subject"/>),
    /// for example when that user signs out; returns how many were removed.
    /// </summary>
    ValueTask<int> RemoveSubjectAsync(string subject, CancellationToken cancellationToken = default);
}

/// <summary>Leases in memory (lost when the process ends).</summary>
public sealed class InMemoryLeaseCache : ILeaseCache
{
    private readonly ConcurrentDictionary<(string, string, string), ModelLease> _leases = new();

    /// <inheritdoc />
    public ValueTask<ModelLease?> GetAsync(string modelId, string version, string keyId, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_leases.TryGetValue((modelId, version, keyId), out ModelLease? lease) ? lease : null);

    /// <inheritdoc />
    public ValueTask StoreAsync(ModelLease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        _leases[(lease.ModelId, lease.Version, lease.KeyId)] = lease;
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask RemoveAsync(string modelId, string version, string keyId, CancellationToken cancellationToken = default)
    {
        _leases.TryRemove((modelId, version, keyId), out _);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveSubjectAsync(string subject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        int removed = 0;
        foreach (KeyValuePair<(string, string, string), ModelLease> entry in _leases)
        {
            if (entry.Value.Subject == subject && _leases.TryRemove(entry))
            {
                removed++;
            }
        }

        return ValueTask.FromResult(removed);
    }
}

/// <summary>
/// Leases as JSON files in an owner-only directory (created 0700 when missing; refused when accessible by others),
/// one file per (model id, version, key id), written atomically and owner-only. A file that cannot be read as a lease
/// is treated as absent.
/// </summary>
public sealed class FileLeaseCache : ILeaseCache
{
    private const int MaxLeaseFileSize = 16 * 1024;

    /// <summary>Creates a cache in <paramref name="directory"/>.</summary>
    public FileLeaseCache(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = Path.GetFullPath(directory);
    }

    /// <summary>The lease directory.</summary>
    public string Directory { get; }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The directory or the lease file is accessible by other users.</exception>
    public async ValueTask<ModelLease?> GetAsync(string modelId, string version, string keyId, CancellationToken cancellationToken = default)
    {
        string path = PathOf(modelId, version, keyId);
        if (!System.IO.Directory.Exists(Directory) || !File.Exists(path))
        {
            return null;
        }

        OwnerOnly.Check(Directory, "lease directory");
        ModelLease? lease = await ReadAsync(path, cancellationToken).ConfigureAwait(false);
        return lease is not null && lease.ModelId == modelId && lease.Version == version && lease.KeyId == keyId ? lease : null;
    }

    /// <summary>A lease file's lease, or null when it is missing, too large or not a lease.</summary>
    private static async ValueTask<ModelLease?> ReadAsync(string path, CancellationToken cancellationToken)
    {
        OwnerOnly.Check(path, "lease file");
        try
        {
            FileStream stream = new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, useAsync: true);
            await using (stream.ConfigureAwait(false))
            {
                if (stream.Length > MaxLeaseFileSize)
                {
                    return null;
                }

                return await JsonSerializer.DeserializeAsync(stream, ClientJson.Default.ModelLease, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (JsonException)
        {
            return null;
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public async ValueTask StoreAsync(ModelLease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        OwnerOnly.EnsureDirectory(Directory, "lease directory");
        AtomicFile file = AtomicFile.Create(PathOf(lease.ModelId, lease.Version, lease.KeyId), overwrite: true, ownerOnly: true);
        await using (file.ConfigureAwait(false))
        {
            await JsonSerializer.SerializeAsync(file.Stream, lease, ClientJson.Default.ModelLease, cancellationToken).ConfigureAwait(false);
            await file.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public ValueTask RemoveAsync(string modelId, string version, string keyId, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (System.IO.Directory.Exists(Directory))
        {
            File.Delete(PathOf(modelId, version, keyId));
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The directory or a lease file is accessible by other users.</exception>
    public async ValueTask<int> RemoveSubjectAsync(string subject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        if (!System.IO.Directory.Exists(Directory))
        {
            return 0;
        }

        OwnerOnly.Check(Directory, "lease directory");
        int removed = 0;
        foreach (string path in System.IO.Directory.EnumerateFiles(Directory, "*.lease.json"))
        {
            if (await ReadAsync(path, cancellationToken).ConfigureAwait(false) is { } lease && lease.Subject == subject)
            {
                File.Delete(path);
                removed++;
            }
        }

        return removed;
    }

    /// <summary>The lease file of a model version and key: a hash of the three ids, so any id is a safe file name.</summary>
    internal string PathOf(string modelId, string version, string keyId)
    {
        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{modelId.Length}:{modelId}|{version.Length}:{version}|{keyId.Length}:{keyId}"));
        return Path.Combine(Directory, Convert.ToHexStringLower(hash.AsSpan(0, 16)) + ".lease.json");
    }
}
