using System.Collections.Concurrent;
using ModelSeal.Hpke;

namespace ModelSeal.Server.Domain;

/// <summary>
/// Device public keys already found to be valid P-256 points, by thumbprint (base64url SHA-256 of the exact 65 bytes),
/// so that a device's repeated releases skip the validation when the request is checked and the import into OpenSSL
/// (about 100 µs, kept by the <see cref="HpkePublicKey"/> after its first seal) when the data key is sealed to it.
/// Validity is a property of the bytes alone, and the thumbprint binds the bytes, so a hit is as good as a fresh
/// import. Only valid keys are remembered. Bounded: when full it starts over (a miss only costs the import again);
/// dropped keys are left to the garbage collector, because a release in flight may still be sealing to one (their
/// native handles are released by the finalizer).
/// </summary>
internal sealed class DeviceKeyCache(int capacity)
{
    private readonly ConcurrentDictionary<string, HpkePublicKey> _keys = new(StringComparer.Ordinal);
    private int _count;

    /// <summary>
    /// The imported key for <paramref name="publicKey"/> (whose thumbprint is <paramref name="thumbprint"/>), or null
    /// when it is not a valid uncompressed P-256 point.
    /// </summary>
    public HpkePublicKey? Get(byte[]? publicKey, string? thumbprint)
    {
        if (publicKey is null || thumbprint is null)
        {
            return null;
        }

        if (_keys.TryGetValue(thumbprint, out HpkePublicKey? known))
        {
            return known;
        }

        HpkePublicKey imported;
        try
        {
            imported = HpkePublicKey.Import(publicKey);
        }
        catch (ModelKeyException)
        {
            return null;
        }

        if (Interlocked.Increment(ref _count) > capacity)
        {
            _keys.Clear();
            Interlocked.Exchange(ref _count, 1);
        }

        return _keys.GetOrAdd(thumbprint, imported);
    }
}
