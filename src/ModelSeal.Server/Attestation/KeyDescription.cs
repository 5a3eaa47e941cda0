using System.Formats.Asn1;
using System.Numerics;

namespace ModelSeal.Server.Attestation;

/// <summary>Android Keystore security levels (KeyDescription <c>SecurityLevel</c>), in increasing strength.</summary>
internal enum AndroidSecurityLevel
{
    Software = 0,
    TrustedEnvironment = 1,
    StrongBox = 2,
}

/// <summary>
/// The Android Key Attestation extension (OID 1.3.6.1.4.1.11129.2.1.17) of an attestation certificate: the parts a
/// release policy reads. Parsed by <see cref="Parse"/> under strict DER: any other encoding (a BER boolean, a long-form
/// length where a short one fits, an unsorted SET OF, authorization tags out of ascending order) is refused, as is a
/// truncated or padded structure. Unknown authorization tags are skipped (newer KeyMint versions add some).
/// </summary>
internal sealed record KeyDescription(
    long AttestationVersion,
    AndroidSecurityLevel AttestationSecurityLevel,
    long KeyMintVersion,
    AndroidSecurityLevel KeyMintSecurityLevel,
    byte[] Challenge,
    AuthorizationList SoftwareEnforced,
    AuthorizationList HardwareEnforced)
{
    /// <summary>The extension's OID.</summary>
    public const string Oid = "1.3.6.1.4.1.11129.2.1.17";

    /// <summary>Largest extension accepted (real ones are under 2 KiB; the limit is documented in docs/attestation.md).</summary>
    public const int MaxSize = 16 * 1024;

    /// <summary>The authorization list that speaks for the key: the hardware's when the key is in hardware.</summary>
    public AuthorizationList Enforced => AttestationSecurityLevel == AndroidSecurityLevel.Software ? SoftwareEnforced : HardwareEnforced;

    /// <summary>Every purpose, in either list (the ATTEST_KEY rule looks at both).</summary>
    public bool HasPurpose(int purpose) => SoftwareEnforced.Purposes.Contains(purpose) || HardwareEnforced.Purposes.Contains(purpose);

    /// <summary>Parses the extension value (the OCTET STRING's content) under strict DER.</summary>
    /// <exception cref="AttestationException">Not a KeyDescription in DER (<see cref="AttestationFailure.ExtensionMalformed"/>).</exception>
    public static KeyDescription Parse(ReadOnlyMemory<byte> value)
    {
        if (value.Length > MaxSize)
        {
            throw new AttestationException(AttestationFailure.ExtensionMalformed, $"The attestation extension is {value.Length} bytes; at most {MaxSize} are accepted.");
        }

        try
        {
            var outer = new AsnReader(value, AsnEncodingRules.DER);
            AsnReader sequence = outer.ReadSequence();
            outer.ThrowIfNotEmpty();
            long attestationVersion = ReadLong(sequence);
            AndroidSecurityLevel attestationLevel = ReadLevel(sequence);
            long keyMintVersion = ReadLong(sequence);
            AndroidSecurityLevel keyMintLevel = ReadLevel(sequence);
            byte[] challenge = sequence.ReadOctetString();
            sequence.ReadOctetString(); // uniqueId
            AuthorizationList software = AuthorizationList.Read(sequence);
            AuthorizationList hardware = AuthorizationList.Read(sequence);
            sequence.ThrowIfNotEmpty();
            return new KeyDescription(attestationVersion, attestationLevel, keyMintVersion, keyMintLevel, challenge, software, hardware);
        }
        catch (AsnContentException e)
        {
            throw new AttestationException(AttestationFailure.ExtensionMalformed, $"The attestation extension is not a KeyDescription in DER: {e.Message}", e);
        }
    }

    internal static long ReadLong(AsnReader reader, Asn1Tag? tag = null)
    {
        BigInteger value = reader.ReadInteger(tag);
        return value >= long.MinValue && value <= long.MaxValue ? (long)value : throw new AsnContentException("An INTEGER is out of range.");
    }

    internal static BigInteger ReadEnumerated(AsnReader reader) => new(reader.ReadEnumeratedBytes().Span, isUnsigned: false, isBigEndian: true);

    private static AndroidSecurityLevel ReadLevel(AsnReader reader)
    {
        BigInteger value = ReadEnumerated(reader);
        return value >= 0 && value <= 2 ? (AndroidSecurityLevel)(int)value : throw new AsnContentException($"Unknown security level {value}.");
    }
}

/// <summary>The fields of a KeyMint <c>AuthorizationList</c> that the release policy reads.</summary>
internal sealed record AuthorizationList(
    IReadOnlySet<int> Purposes,
    int? Algorithm,
    int? KeySize,
    int? EcCurve,
    int? Origin,
    RootOfTrust? RootOfTrust,
    AttestationApplicationId? ApplicationId)
{
    public const int PurposeSign = 2;
    public const int PurposeAgreeKey = 6;
    public const int PurposeAttestKey = 7;
    public const int AlgorithmEc = 3;
    public const int CurveP256 = 1;
    public const int OriginGenerated = 0;

    private const int TagPurpose = 1;
    private const int TagAlgorithm = 2;
    private const int TagKeySize = 3;
    private const int TagEcCurve = 10;
    private const int TagOrigin = 702;
    private const int TagRootOfTrust = 704;
    private const int TagApplicationId = 709;

    internal static AuthorizationList Read(AsnReader parent)
    {
        AsnReader list = parent.ReadSequence();
        var purposes = new HashSet<int>();
        int? algorithm = null, keySize = null, ecCurve = null, origin = null;
        RootOfTrust? rootOfTrust = null;
        AttestationApplicationId? applicationId = null;
        int previous = -1;
        while (list.HasData)
        {
            Asn1Tag tag = list.PeekTag();
            if (tag.TagClass != TagClass.ContextSpecific || !tag.IsConstructed)
            {
                throw new AsnContentException("An authorization is not an explicitly tagged field.");
            }

            if (tag.TagValue <= previous)
            {
                // The schema lists the fields in ascending tag order, each at most once.
                throw new AsnContentException($"Authorization tag {tag.TagValue} follows tag {previous}: the tags must ascend.");
            }

            previous = tag.TagValue;
            AsnReader field = list.ReadSequence(tag);
            switch (tag.TagValue)
            {
                case TagPurpose:
                    AsnReader set = field.ReadSetOf();
                    while (set.HasData)
                    {
                        purposes.Add(ReadInt(set));
                    }

                    break;
                case TagAlgorithm:
                    algorithm = ReadInt(field);
                    break;
                case TagKeySize:
                    keySize = ReadInt(field);
                    break;
                case TagEcCurve:
                    ecCurve = ReadInt(field);
                    break;
                case TagOrigin:
                    origin = ReadInt(field);
                    break;
                case TagRootOfTrust:
                    rootOfTrust = RootOfTrust.Read(field);
                    break;
                case TagApplicationId:
                    applicationId = AttestationApplicationId.Parse(field.ReadOctetString());
                    break;
                default:
                    field.ReadEncodedValue();
                    break;
            }

            field.ThrowIfNotEmpty();
        }

        return new AuthorizationList(purposes, algorithm, keySize, ecCurve, origin, rootOfTrust, applicationId);
    }

    private static int ReadInt(AsnReader reader) =>
        reader.TryReadInt32(out int value) ? value : throw new AsnContentException("An INTEGER does not fit 32 bits.");
}

/// <summary>Android verified-boot states.</summary>
internal enum VerifiedBootState
{
    Verified = 0,
    SelfSigned = 1,
    Unverified = 2,
    Failed = 3,
}

/// <summary>The device's boot state as the secure hardware saw it.</summary>
internal sealed record RootOfTrust(bool DeviceLocked, VerifiedBootState BootState)
{
    internal static RootOfTrust Read(AsnReader field)
    {
        AsnReader sequence = field.ReadSequence();
        sequence.ReadOctetString(); // verifiedBootKey
        bool locked = sequence.ReadBoolean();
        BigInteger state = KeyDescription.ReadEnumerated(sequence);
        if (sequence.HasData)
        {
            sequence.ReadOctetString(); // verifiedBootHash (attestation version 3 and later)
        }

        sequence.ThrowIfNotEmpty();
        return state >= 0 && state <= 3 ? new RootOfTrust(locked, (VerifiedBootState)(int)state) : throw new AsnContentException($"Unknown verified boot state {state}.");
    }
}

/// <summary>The app that asked for the key, as the OS (not the secure hardware) reported it.</summary>
internal sealed record AttestationApplicationId(IReadOnlyList<string> PackageNames, IReadOnlyList<string> SignatureDigests)
{
    internal static AttestationApplicationId Parse(byte[] encoded)
    {
        var outer = new AsnReader(encoded, AsnEncodingRules.DER);
        AsnReader sequence = outer.ReadSequence();
        outer.ThrowIfNotEmpty();
        var names = new List<string>();
        AsnReader packages = sequence.ReadSetOf();
        while (packages.HasData)
        {
            AsnReader package = packages.ReadSequence();
            names.Add(System.Text.Encoding.UTF8.GetString(package.ReadOctetString()));
            KeyDescription.ReadLong(package); // version
            package.ThrowIfNotEmpty();
        }

        var digests = new List<string>();
        AsnReader signatures = sequence.ReadSetOf();
        while (signatures.HasData)
        {
            digests.Add(Convert.ToHexStringLower(signatures.ReadOctetString()));
        }

        sequence.ThrowIfNotEmpty();
        return new AttestationApplicationId(names, digests);
    }
}
