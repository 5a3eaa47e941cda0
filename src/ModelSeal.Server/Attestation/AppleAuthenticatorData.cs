using System.Buffers.Binary;
using System.Formats.Cbor;

namespace ModelSeal.Server.Attestation;

/// <summary>
/// App Attest authenticator data (WebAuthn's layout): <c>rpIdHash (32) || flags (1) || counter (4, big-endian)</c>,
/// then in an attestation the attested credential data <c>aaguid (16) || credentialIdLength (2) || credentialId ||
/// credentialPublicKey (COSE_Key, CBOR)</c>, parsed by length. After that, one CBOR map of extensions is accepted
/// whether or not the ED flag says so: Apple's own 2026 sample carries one with the flag clear
/// (tests/attestation/SOURCES.md, fact 11). Anything else after it is refused. An assertion's authenticator data has
/// no attested credential data, whatever its flags say.
/// </summary>
internal sealed record AppleAuthenticatorData(byte[] RpIdHash, byte Flags, uint Counter, byte[]? Aaguid, byte[]? CredentialId, byte[]? CredentialPublicKey)
{
    /// <summary>The AT flag: attested credential data follows.</summary>
    public const byte AttestedCredentialData = 0x40;

    /// <summary>The ED flag: extensions follow.</summary>
    public const byte ExtensionData = 0x80;

    private const int HeaderLength = 37;

    /// <summary>Parses authenticator data: an attestation's (<paramref name="attested"/>: attested credential data required) or an assertion's.</summary>
    /// <exception cref="AttestationException"><see cref="AttestationFailure.AuthenticatorDataMalformed"/>.</exception>
    public static AppleAuthenticatorData Parse(ReadOnlySpan<byte> data, bool attested)
    {
        if (data.Length < HeaderLength)
        {
            throw Malformed($"it has {data.Length} bytes, fewer than the {HeaderLength} of its header");
        }

        byte flags = data[32];
        uint counter = BinaryPrimitives.ReadUInt32BigEndian(data[33..]);
        byte[] rpIdHash = data[..32].ToArray();
        ReadOnlySpan<byte> rest = data[HeaderLength..];
        if (!attested)
        {
            // An assertion's authenticator data is the header alone, although App Attest sets the AT flag in it too
            // (both real assertions in tests/attestation/apple have flags 0x40 and 37 bytes).
            Extensions(rest);
            return new AppleAuthenticatorData(rpIdHash, flags, counter, null, null, null);
        }

        if ((flags & AttestedCredentialData) == 0)
        {
            throw Malformed("the AT flag is clear, so it carries no attested key");
        }

        if (rest.Length < 18)
        {
            throw Malformed("the attested credential data is shorter than its aaguid and length");
        }

        byte[] aaguid = rest[..16].ToArray();
        int idLength = BinaryPrimitives.ReadUInt16BigEndian(rest[16..]);
        rest = rest[18..];
        if (rest.Length < idLength)
        {
            throw Malformed($"the credential id is {idLength} bytes but only {rest.Length} follow");
        }

        byte[] credentialId = rest[..idLength].ToArray();
        rest = rest[idLength..];
        int keyLength = CborValueLength(rest, "the credential public key");
        byte[] credentialPublicKey = rest[..keyLength].ToArray();
        Extensions(rest[keyLength..]);
        return new AppleAuthenticatorData(rpIdHash, flags, counter, aaguid, credentialId, credentialPublicKey);
    }

    /// <summary>The x and y coordinates of a COSE EC2 P-256 key (kty 2, crv 1), as the point 04 || x || y.</summary>
    /// <exception cref="AttestationException"><see cref="AttestationFailure.AuthenticatorDataMalformed"/>.</exception>
    public static byte[] CosePoint(byte[] coseKey)
    {
        try
        {
            var reader = new CborReader(coseKey, CborConformanceMode.Strict);
            int count = reader.ReadStartMap() ?? throw Malformed("the credential public key is an indefinite-length map");
            long? kty = null;
            long? crv = null;
            byte[]? x = null;
            byte[]? y = null;
            for (int i = 0; i < count; i++)
            {
                switch (reader.ReadInt64())
                {
                    case 1: kty = reader.ReadInt64(); break;
                    case -1: crv = reader.ReadInt64(); break;
                    case -2: x = reader.ReadByteString(); break;
                    case -3: y = reader.ReadByteString(); break;
                    default: reader.SkipValue(); break;
                }
            }

            reader.ReadEndMap();
            if (kty != 2 || crv != 1 || x is not { Length: 32 } || y is not { Length: 32 })
            {
                throw Malformed("the credential public key is not a COSE EC2 P-256 key");
            }

            return [0x04, .. x, .. y];
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException or OverflowException)
        {
            // OverflowException: ReadInt64 of an integer outside long's range (a map key or kty/crv of -2^64, say;
            // fuzz finding 2, docs/fuzzing.md).
            throw Malformed($"the credential public key is not a COSE key ({e.Message})", e);
        }
    }

    /// <summary>Nothing, or exactly one CBOR map.</summary>
    private static void Extensions(ReadOnlySpan<byte> rest)
    {
        if (!rest.IsEmpty && CborValueLength(rest, "the extensions", CborReaderState.StartMap) != rest.Length)
        {
            throw Malformed("bytes follow its extensions");
        }
    }

    /// <summary>The length of the first CBOR value in <paramref name="data"/> (strict), optionally of a given kind.</summary>
    private static int CborValueLength(ReadOnlySpan<byte> data, string what, CborReaderState? kind = null)
    {
        try
        {
            var reader = new CborReader(data.ToArray(), CborConformanceMode.Strict, allowMultipleRootLevelValues: true);
            if (kind is { } expected && reader.PeekState() != expected)
            {
                throw Malformed($"{what}: not a CBOR map");
            }

            reader.SkipValue();
            return data.Length - reader.BytesRemaining;
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException)
        {
            throw Malformed($"{what}: not well-formed CBOR ({e.Message})", e);
        }
    }

    private static AttestationException Malformed(string why, Exception? inner = null) =>
        new(AttestationFailure.AuthenticatorDataMalformed, $"The App Attest authenticator data is malformed: {why}.", inner);
}
