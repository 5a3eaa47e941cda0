using System.Collections.Concurrent;

namespace ModelSeal.Server.Security;

/// <summary>
/// Thumbprints (base64url SHA-256 of the exact 65 bytes) of device public keys already found to be valid P-256 points,
/// so that a device's repeated releases skip the import that validates the point (about 100 µs of OpenSSL work, a
/// scalar multiplication for the order check). Validity is a property of the bytes alone, and the thumbprint binds the
/// bytes, so a hit is as good as a fresh check. Only valid keys are remembered. Bounded: when full it starts over
/// (a miss only costs the check again).
/// </summary>
internal sealed class DeviceKeyCache(int capacity)
{
    private readonly ConcurrentDictionary<string, bool> _valid = new(StringComparer.Ordinal);
    private int _count;

    /// <summary>
    /// True when <paramref name="publicKey"/> (whose thumbprint is <paramref name="thumbprint"/>) is a valid
    /// uncompressed P-256 point; <paramref name="validate"/> decides on a miss.
    /// </summary>
    public bool IsValid(byte[]? publicKey, string? thumbprint, Func<byte[]?, bool> validate)
    {
        if (publicKey is null || thumbprint is null)
        {
            return false;
        }

        if (_valid.ContainsKey(thumbprint))
        {
            return true;
        }

        if (!validate(publicKey))
        {
            return false;
        }

        if (Interlocked.Increment(ref _count) > capacity)
        {
            _valid.Clear();
            Interlocked.Exchange(ref _count, 1);
        }

        _valid.TryAdd(thumbprint, true);
        return true;
    }
}
