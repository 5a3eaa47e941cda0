using System.Buffers.Text;
using ModelSeal.Protocol;

namespace ModelSeal.Client;

/// <summary>
/// The platform's attestation of this device's key and app (docs/client.md "Attestation"), for key servers whose
/// licence or entitlement rule has an attestation policy. When one is registered (in DI, or given to
/// <see cref="KeyServerKeySource"/>), the client's first release in the process asks the key server for a challenge,
/// calls <see cref="AttestAsync"/> with it, then gets the device key from the <see cref="IDeviceKeyStore"/> and sends the
/// evidence with the release; once a release with evidence succeeds, none is sent again in this process.
/// </summary>
/// <remarks>
/// On Android the platform key store implements this interface and <see cref="IDeviceKeyStore"/> in one class:
/// <see cref="AttestAsync"/> generates the device key with the challenge (<c>KeyGenParameterSpec.Builder
/// .setAttestationChallenge</c>) on its first call and returns the key's certificate chain
/// (<see cref="DeviceAttestationEvidence.AndroidKeyChain"/>). On iOS it attests an App Attest key over the challenge and
/// asserts with it over the device public key (<see cref="DeviceAttestationEvidence.AppleAppAttest"/>, docs/protocol.md
/// section 2.6). Calls are made one at a time by the client.
/// </remarks>
public interface IDeviceAttestation
{
    /// <summary>Attests the device key (creating it when needed) over <paramref name="challenge"/>, the key server's
    /// single-use challenge (32 bytes).</summary>
    /// <param name="challenge">The challenge the key server issued for this release.</param>
    /// <param name="cancellationToken">Cancels the attestation.</param>
    /// <returns>The evidence to send with the release.</returns>
    ValueTask<DeviceAttestationEvidence> AttestAsync(ReadOnlyMemory<byte> challenge, CancellationToken cancellationToken = default);
}

/// <summary>
/// The evidence an <see cref="IDeviceAttestation"/> returns, sent with a release request as its <c>attestation</c>
/// member (docs/protocol.md section 2.6). Made by one of the factories; the arrays are copied.
/// </summary>
public sealed class DeviceAttestationEvidence
{
    private const string AndroidKeyFormat = "android-key";
    private const string AppleAppAttestFormat = "apple-appattest";
    private const string AppleAssertionFormat = "apple-appattest-assertion";

    private readonly string _format;
    private readonly byte[][]? _certificates;
    private readonly byte[]? _keyId;
    private readonly byte[]? _attestationObject;
    private readonly byte[]? _assertion;

    private DeviceAttestationEvidence(string format, byte[][]? certificates, byte[]? keyId, byte[]? attestationObject, byte[]? assertion)
    {
        _format = format;
        _certificates = certificates;
        _keyId = keyId;
        _attestationObject = attestationObject;
        _assertion = assertion;
    }

    /// <summary>
    /// Android Key Attestation (<c>android-key</c>): the device key's certificate chain as the Android Keystore returns
    /// it (<c>KeyStore.getCertificateChain</c>), each certificate DER, the attested key's certificate first and the root
    /// last. The key must have been generated with the challenge.
    /// </summary>
    /// <param name="certificates">The chain, leaf first; at least one certificate, none empty.</param>
    /// <exception cref="ArgumentException">The chain is empty or holds an empty certificate.</exception>
    public static DeviceAttestationEvidence AndroidKeyChain(IReadOnlyList<byte[]> certificates)
    {
        ArgumentNullException.ThrowIfNull(certificates);
        if (certificates.Count == 0)
        {
            throw new ArgumentException("The attestation certificate chain is empty: pass KeyStore.getCertificateChain(alias) of the device key, leaf first.", nameof(certificates));
        }

        byte[][] copy = new byte[certificates.Count][];
        for (int i = 0; i < copy.Length; i++)
        {
            copy[i] = NonEmpty(certificates[i], nameof(certificates), $"certificate {i} of the chain");
        }

        return new DeviceAttestationEvidence(AndroidKeyFormat, copy, null, null, null);
    }

    /// <summary>
    /// Apple App Attest (<c>apple-appattest</c>): the App Attest key id (<c>generateKey</c>, base64-decoded), its
    /// attestation object (<c>attestKey</c> with <c>clientDataHash = SHA-256(challenge)</c>) and an assertion with it
    /// over the device public key and the challenge (<c>generateAssertion</c>, docs/protocol.md section 2.6).
    /// </summary>
    /// <exception cref="ArgumentException">A member is empty.</exception>
    public static DeviceAttestationEvidence AppleAppAttest(byte[] keyId, byte[] attestationObject, byte[] assertion) =>
        new(AppleAppAttestFormat, null, NonEmpty(keyId, nameof(keyId), "the key id"), NonEmpty(attestationObject, nameof(attestationObject), "the attestation object"), NonEmpty(assertion, nameof(assertion), "the assertion"));

    /// <summary>
    /// A fresh App Attest assertion of an already attested key (<c>apple-appattest-assertion</c>) over the device public
    /// key and the new challenge, for a key server whose policy asks for re-assertion.
    /// </summary>
    /// <exception cref="ArgumentException">The assertion is empty.</exception>
    public static DeviceAttestationEvidence AppleAssertion(byte[] assertion) =>
        new(AppleAssertionFormat, null, null, null, NonEmpty(assertion, nameof(assertion), "the assertion"));

    /// <summary>The <c>attestation</c> member of a release request over <paramref name="challenge"/>.</summary>
    internal AttestationEvidence ToWire(ReadOnlySpan<byte> challenge) => new(
        _format,
        Base64Url.EncodeToString(challenge),
        _certificates is null ? null : Array.ConvertAll(_certificates, c => (string?)Base64Url.EncodeToString(c)),
        Encode(_keyId),
        Encode(_attestationObject),
        Encode(_assertion));

    private static string? Encode(byte[]? bytes) => bytes is null ? null : Base64Url.EncodeToString(bytes);

    private static byte[] NonEmpty(byte[]? bytes, string parameter, string what)
    {
        ArgumentNullException.ThrowIfNull(bytes, parameter);
        return bytes.Length == 0 ? throw new ArgumentException($"The attestation evidence's {what} is empty.", parameter) : (byte[])bytes.Clone();
    }
}
