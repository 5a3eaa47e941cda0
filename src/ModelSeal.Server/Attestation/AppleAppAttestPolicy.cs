using System.Security.Cryptography;
using System.Text;

namespace ModelSeal.Server.Attestation;

/// <summary>The App Attest environment a key was made in, from authData's aaguid.</summary>
internal enum AppAttestEnvironment
{
    /// <summary>aaguid <c>appattest</c> followed by seven zero bytes: an App Store, TestFlight or enterprise build.</summary>
    Production,

    /// <summary>aaguid <c>appattestdevelop</c>: a build signed for development.</summary>
    Development,
}

/// <summary>
/// What a release policy demands of an Apple App Attest attestation beyond a chain to the pinned root: the App IDs
/// (<c>TEAMID.bundle.id</c>) that may receive keys, and whether development keys are accepted (default: production
/// only, because a development build can be made by anyone on the team and runs under a debugger).
/// </summary>
internal sealed record AppleAppAttestPolicy
{
    /// <summary>The App IDs (<c>TEAMID.bundle.id</c>) whose keys are accepted.</summary>
    public IReadOnlySet<string> AppIds { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Whether keys of the development environment (aaguid <c>appattestdevelop</c>) are accepted too.</summary>
    public bool AllowDevelopment { get; init; }

    /// <summary>When set, a release after this long since the key's last (re)verification must carry a fresh assertion.</summary>
    public TimeSpan? ReassertAfter { get; init; }

    /// <summary>The allowed App ID whose SHA-256 is <paramref name="rpIdHash"/>, or null.</summary>
    public string? AppIdOf(ReadOnlySpan<byte> rpIdHash)
    {
        foreach (string appId in AppIds)
        {
            if (AppleAppAttest.RpIdHash(appId).AsSpan().SequenceEqual(rpIdHash))
            {
                return appId;
            }
        }

        return null;
    }
}

/// <summary>
/// A verified App Attest attestation: the key id (SHA-256 of the public key), the attested public key (the 65-byte
/// uncompressed P-256 point), the App ID, the environment, the counter (0) and the receipt Apple issued with it (kept
/// for Apple's fraud-metric service; not verified here).
/// </summary>
internal sealed record AppleAttestation(byte[] KeyId, byte[] PublicKey, string AppId, AppAttestEnvironment Environment, uint Counter, byte[] Receipt);

/// <summary>A verified App Attest assertion: its counter, which the caller stores in place of the previous one.</summary>
internal sealed record AppleAssertion(uint Counter);

/// <summary>Encodings of App Attest's inputs that are not Apple's but this project's (docs/protocol.md §2.6).</summary>
internal static class AppleAppAttestBinding
{
    /// <summary>The domain-separation label of <see cref="DeviceKeyClientDataHash"/>.</summary>
    public const string DeviceKeyLabel = "modelseal-appattest-device-key-v1";

    /// <summary>
    /// The clientDataHash of the assertion that binds an HPKE device key to an attested App Attest key:
    /// <c>SHA-256("modelseal-appattest-device-key-v1" || 0x00 || len16(challenge) || challenge || devicePublicKey)</c>,
    /// where the device key is the 65-byte uncompressed P-256 point and <c>len16</c> the byte length as 2 bytes big-endian.
    /// </summary>
    /// <exception cref="ArgumentException">The challenge is empty or longer than 65535 bytes, or the key is not an uncompressed point.</exception>
    public static byte[] DeviceKeyClientDataHash(ReadOnlySpan<byte> challenge, ReadOnlySpan<byte> devicePublicKey)
    {
        if (challenge.IsEmpty || challenge.Length > ushort.MaxValue)
        {
            throw new ArgumentException($"A challenge has 1 to {ushort.MaxValue} bytes; this one has {challenge.Length}.", nameof(challenge));
        }

        if (devicePublicKey.Length != 65 || devicePublicKey[0] != 0x04)
        {
            throw new ArgumentException("The device public key must be the 65-byte uncompressed P-256 point (04 || x || y).", nameof(devicePublicKey));
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.ASCII.GetBytes(DeviceKeyLabel));
        hash.AppendData([0x00, (byte)(challenge.Length >> 8), (byte)challenge.Length]);
        hash.AppendData(challenge);
        hash.AppendData(devicePublicKey);
        return hash.GetHashAndReset();
    }
}
