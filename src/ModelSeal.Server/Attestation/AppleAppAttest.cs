using System.Formats.Asn1;
using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace ModelSeal.Server.Attestation;

/// <summary>
/// Apple App Attest evidence verified as Apple documents it ("Validating apps that connect to your server",
/// developer.apple.com/documentation/devicecheck/validating-apps-that-connect-to-your-server). Pure functions of
/// the bytes, the expected clientDataHash, the policy, the pinned App Attestation root and the verification time.
/// App Attest attests the <b>app</b> (its App ID, on a genuine Apple device) and a Secure Enclave key App Attest
/// made; it says nothing about where any other key — the HPKE device key — lives. CBOR is read with
/// System.Formats.Cbor, which ships in the ASP.NET Core shared framework this server already references (no package).
/// </summary>
internal static class AppleAppAttest
{
    /// <summary>The attestation statement format App Attest uses.</summary>
    public const string Format = "apple-appattest";

    /// <summary>The leaf extension holding the nonce: <c>SEQUENCE { [1] EXPLICIT OCTET STRING }</c>.</summary>
    public const string NonceOid = "1.2.840.113635.100.8.2";

    /// <summary>Largest attestation or assertion object accepted, in bytes (real attestations are 5 to 6 KiB, assertions 140 bytes).</summary>
    public const int MaxObjectSize = 32 * 1024;

    /// <summary>Most certificates accepted in x5c (Apple sends the leaf and one intermediate).</summary>
    public const int MaxChainLength = 4;

    private static readonly byte[] ProductionAaguid = [.. "appattest"u8, 0, 0, 0, 0, 0, 0, 0];
    private static readonly byte[] DevelopmentAaguid = [.. "appattestdevelop"u8];

    /// <summary>The rpIdHash of an App ID: SHA-256 of its UTF-8 bytes (<c>TEAMID.bundle.id</c>).</summary>
    public static byte[] RpIdHash(string appId) => SHA256.HashData(Encoding.UTF8.GetBytes(appId));

    /// <summary>
    /// Verifies an attestation object: strict CBOR <c>{fmt: "apple-appattest", attStmt: {x5c, receipt}, authData}</c>;
    /// x5c chains to <paramref name="root"/> at <paramref name="time"/> (no revocation check, nothing downloaded); the
    /// leaf's nonce equals SHA-256(authData || <paramref name="clientDataHash"/>); the key id, SHA-256 of the leaf's
    /// P-256 point, equals <paramref name="keyId"/> and the credential id; the rpIdHash is an allowed App ID's; the
    /// counter is 0; the aaguid names an environment the policy allows; the COSE key in authData is the leaf's key.
    /// The checks run in this order and the first failure is the reason.
    /// </summary>
    /// <param name="attestationObject">The CBOR the app's <c>attestKey</c> returned.</param>
    /// <param name="clientDataHash">The hash the app passed to <c>attestKey</c>, as the server expects it for the challenge it issued.</param>
    /// <param name="keyId">The key id the app claims (the identifier <c>generateKey</c> returned, decoded).</param>
    /// <param name="policy">The allowed App IDs and environments.</param>
    /// <param name="root">The pinned Apple App Attestation Root CA.</param>
    /// <param name="time">The verification time.</param>
    /// <exception cref="AttestationException">The evidence is refused; <see cref="AttestationException.Failure"/> says why.</exception>
    public static AppleAttestation VerifyAttestation(
        ReadOnlySpan<byte> attestationObject, ReadOnlySpan<byte> clientDataHash, ReadOnlySpan<byte> keyId, AppleAppAttestPolicy policy, X509Certificate2 root, DateTimeOffset time)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(root);
        (List<byte[]> x5c, byte[] receipt, byte[] authDataBytes) = ParseAttestation(attestationObject);
        AppleAuthenticatorData authData = AppleAuthenticatorData.Parse(authDataBytes, attested: true);

        var certificates = new List<X509Certificate2>(x5c.Count);
        try
        {
            foreach (byte[] der in x5c)
            {
                certificates.Add(LoadCertificate(der, certificates.Count));
            }

            CheckChain(certificates, root, time);
            X509Certificate2 leaf = certificates[0];

            byte[] nonce = SHA256.HashData([.. authDataBytes, .. clientDataHash]);
            if (!CryptographicOperations.FixedTimeEquals(NonceOf(leaf), nonce))
            {
                throw new AttestationException(AttestationFailure.ChallengeMismatch, "The attestation's nonce is not SHA-256(authData || clientDataHash) for the challenge the server issued.");
            }

            byte[] point = P256PointOf(leaf);
            byte[] computedKeyId = SHA256.HashData(point);
            if (!computedKeyId.AsSpan().SequenceEqual(keyId))
            {
                throw new AttestationException(AttestationFailure.KeyIdMismatch, "The attested key's id (SHA-256 of its public key) is not the key id the client claims.");
            }

            string appId = policy.AppIdOf(authData.RpIdHash)
                ?? throw new AttestationException(AttestationFailure.AppIdNotAllowed, $"The attestation is for an App ID (rpIdHash {Convert.ToHexStringLower(authData.RpIdHash)}) that is not on the allow-list.");

            if (authData.Counter != 0)
            {
                throw new AttestationException(AttestationFailure.CounterNotZero, $"An attestation's counter is 0; this one's is {authData.Counter}.");
            }

            AppAttestEnvironment environment = EnvironmentOf(authData.Aaguid!, policy);

            if (!authData.CredentialId!.AsSpan().SequenceEqual(computedKeyId))
            {
                throw new AttestationException(AttestationFailure.KeyIdMismatch, "The credential id in authData is not the attested key's id.");
            }

            if (!AppleAuthenticatorData.CosePoint(authData.CredentialPublicKey!).AsSpan().SequenceEqual(point))
            {
                throw new AttestationException(AttestationFailure.KeyIdMismatch, "The credential public key in authData is not the certificate's key.");
            }

            return new AppleAttestation(computedKeyId, point, appId, environment, authData.Counter, receipt);
        }
        finally
        {
            foreach (X509Certificate2 certificate in certificates)
            {
                certificate.Dispose();
            }
        }
    }

    /// <summary>
    /// Verifies an assertion object: strict CBOR <c>{signature, authenticatorData}</c>; the signature, ECDSA P-256
    /// SHA-256 in DER, over SHA-256(authenticatorData || <paramref name="clientDataHash"/>) under the attested
    /// <paramref name="publicKey"/>; the rpIdHash is <paramref name="appId"/>'s; the counter is greater than
    /// <paramref name="storedCounter"/>. The checks run in this order and the first failure is the reason.
    /// </summary>
    /// <param name="assertionObject">The CBOR the app's <c>generateAssertion</c> returned.</param>
    /// <param name="clientDataHash">The hash the app passed to <c>generateAssertion</c>, as the server expects it.</param>
    /// <param name="publicKey">The attested key (<see cref="AppleAttestation.PublicKey"/>, a 65-byte P-256 point).</param>
    /// <param name="appId">The attested App ID (<see cref="AppleAttestation.AppId"/>).</param>
    /// <param name="storedCounter">The counter stored for the key (the attestation's 0, then each assertion's).</param>
    /// <exception cref="AttestationException">The assertion is refused; <see cref="AttestationException.Failure"/> says why.</exception>
    public static AppleAssertion VerifyAssertion(ReadOnlySpan<byte> assertionObject, ReadOnlySpan<byte> clientDataHash, ReadOnlySpan<byte> publicKey, string appId, uint storedCounter)
    {
        ArgumentNullException.ThrowIfNull(appId);
        if (publicKey.Length != 65 || publicKey[0] != 0x04)
        {
            throw new ArgumentException("The attested key must be the 65-byte uncompressed P-256 point (04 || x || y).", nameof(publicKey));
        }

        (byte[] signature, byte[] authDataBytes) = ParseAssertion(assertionObject);
        AppleAuthenticatorData authData = AppleAuthenticatorData.Parse(authDataBytes, attested: false);

        byte[] nonce = SHA256.HashData([.. authDataBytes, .. clientDataHash]);
        bool valid;
        try
        {
            using var key = ECDsa.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = publicKey.Slice(1, 32).ToArray(), Y = publicKey.Slice(33, 32).ToArray() },
            });
            valid = key.VerifyData(nonce, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException("The attested key is not a point on P-256.", nameof(publicKey), e);
        }

        if (!valid)
        {
            throw new AttestationException(AttestationFailure.AssertionSignatureInvalid, "The assertion's signature does not verify under the attested key over SHA-256(authenticatorData || clientDataHash).");
        }

        if (!authData.RpIdHash.AsSpan().SequenceEqual(RpIdHash(appId)))
        {
            throw new AttestationException(AttestationFailure.AppIdNotAllowed, "The assertion is for another App ID than the attested one.");
        }

        if (authData.Counter <= storedCounter)
        {
            throw new AttestationException(AttestationFailure.CounterNotIncreasing, $"The assertion's counter {authData.Counter} is not greater than the stored {storedCounter}: a replayed assertion or a cloned key.");
        }

        return new AppleAssertion(authData.Counter);
    }

    private static (List<byte[]> X5c, byte[] Receipt, byte[] AuthData) ParseAttestation(ReadOnlySpan<byte> data)
    {
        Dictionary<string, byte[]> members = TopLevelMap(data, "attestation", ["fmt", "attStmt", "authData"]);
        return Cbor("attestation", () =>
        {
            var fmt = new CborReader(members["fmt"], CborConformanceMode.Strict);
            string format = fmt.ReadTextString();
            if (format != Format)
            {
                throw new AttestationException(AttestationFailure.FormatUnsupported, $"The attestation's format is '{format}', not '{Format}'.");
            }

            Dictionary<string, byte[]> statement = TopLevelMap(members["attStmt"], "attestation statement", ["x5c", "receipt"]);
            var x5cReader = new CborReader(statement["x5c"], CborConformanceMode.Strict);
            int count = x5cReader.ReadStartArray() ?? throw Malformed("attestation", "x5c is an indefinite-length array");
            if (count < 2 || count > MaxChainLength)
            {
                throw new AttestationException(AttestationFailure.ChainMalformed, $"x5c has 2 to {MaxChainLength} certificates; this one has {count}.");
            }

            var x5c = new List<byte[]>(count);
            for (int i = 0; i < count; i++)
            {
                x5c.Add(x5cReader.ReadByteString());
            }

            x5cReader.ReadEndArray();
            byte[] receipt = new CborReader(statement["receipt"], CborConformanceMode.Strict).ReadByteString();
            byte[] authData = new CborReader(members["authData"], CborConformanceMode.Strict).ReadByteString();
            return (x5c, receipt, authData);
        });
    }

    private static (byte[] Signature, byte[] AuthenticatorData) ParseAssertion(ReadOnlySpan<byte> data)
    {
        Dictionary<string, byte[]> members = TopLevelMap(data, "assertion", ["signature", "authenticatorData"]);
        return Cbor("assertion", () => (
            new CborReader(members["signature"], CborConformanceMode.Strict).ReadByteString(),
            new CborReader(members["authenticatorData"], CborConformanceMode.Strict).ReadByteString()));
    }

    /// <summary>
    /// A definite-length CBOR map with exactly the text keys <paramref name="names"/>, each once, and nothing after
    /// it: each member's encoded value, to be read once the format is known.
    /// </summary>
    private static Dictionary<string, byte[]> TopLevelMap(ReadOnlySpan<byte> data, string what, string[] names)
    {
        if (data.Length > MaxObjectSize)
        {
            throw Malformed(what, $"it has {data.Length} bytes; at most {MaxObjectSize} are accepted");
        }

        byte[] bytes = data.ToArray();
        return Cbor(what, () =>
        {
            var reader = new CborReader(bytes, CborConformanceMode.Strict);
            int count = reader.ReadStartMap() ?? throw Malformed(what, "it is an indefinite-length map");
            var members = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            for (int i = 0; i < count; i++)
            {
                string name = reader.ReadTextString();
                if (!names.Contains(name, StringComparer.Ordinal))
                {
                    throw Malformed(what, $"it has an unknown member '{name}'");
                }

                members[name] = reader.ReadEncodedValue().ToArray();
            }

            reader.ReadEndMap();
            if (reader.BytesRemaining != 0)
            {
                throw Malformed(what, $"{reader.BytesRemaining} bytes follow it");
            }

            if (names.FirstOrDefault(n => !members.ContainsKey(n)) is { } missing)
            {
                throw Malformed(what, $"its member '{missing}' is missing");
            }

            return members;
        });
    }

    /// <summary>Runs a CBOR read, turning the reader's errors (not well-formed, wrong type) into <see cref="AttestationFailure.CborMalformed"/>.</summary>
    private static T Cbor<T>(string what, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException)
        {
            throw Malformed(what, e.Message, e);
        }
    }

    private static AttestationException Malformed(string what, string why, Exception? inner = null) =>
        new(AttestationFailure.CborMalformed, $"The App Attest {what} is not strict CBOR of its schema: {why}.", inner);

    private static X509Certificate2 LoadCertificate(byte[] der, int index)
    {
        try
        {
            // The outer structure must be one DER SEQUENCE of exactly these bytes (the loader alone also takes PEM and BER).
            var outer = new AsnReader(der, AsnEncodingRules.DER);
            outer.ReadEncodedValue();
            outer.ThrowIfNotEmpty();
            return X509CertificateLoader.LoadCertificate(der);
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
            throw new AttestationException(AttestationFailure.ChainMalformed, $"x5c certificate {index} is not an X.509 certificate in DER.", e);
        }
    }

    /// <summary>
    /// x5c must chain to the pinned root with an ordinary path builder: App Attest certificates are ordinary CA
    /// certificates (unlike Android's), so <see cref="X509Chain"/> with only the pinned root trusted, nothing
    /// downloaded, no revocation check and the given time.
    /// </summary>
    private static void CheckChain(List<X509Certificate2> certificates, X509Certificate2 root, DateTimeOffset time)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.ExtraStore.AddRange(certificates.Skip(1).ToArray());
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.VerificationTime = time.UtcDateTime;
        bool built;
        try
        {
            built = chain.Build(certificates[0]);
        }
        catch (CryptographicException e)
        {
            // The loader does not decode the public key: a leaf whose key OpenSSL cannot read fails only here (docs/fuzzing.md finding 5).
            throw new AttestationException(AttestationFailure.ChainMalformed, $"x5c is not a certificate path OpenSSL can build ({e.Message}).", e);
        }

        X509ChainStatusFlags flags = chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (all, s) => all | s.Status);
        string statuses = string.Join("; ", chain.ChainStatus.Select(s => s.Status.ToString()));
        if ((flags & X509ChainStatusFlags.NotSignatureValid) != 0)
        {
            throw new AttestationException(AttestationFailure.SignatureInvalid, $"A signature in x5c does not verify ({statuses}).");
        }

        if ((flags & (X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain)) != 0
            || chain.ChainElements.Count == 0 || !chain.ChainElements[^1].Certificate.RawDataMemory.Span.SequenceEqual(root.RawDataMemory.Span))
        {
            throw new AttestationException(AttestationFailure.UntrustedRoot, $"x5c does not chain to the pinned App Attestation root ({statuses}).");
        }

        if ((flags & X509ChainStatusFlags.NotTimeValid) != 0)
        {
            throw new AttestationException(AttestationFailure.CertificateExpired, $"A certificate of x5c is outside its validity at {time.UtcDateTime:O}.");
        }

        if (!built || flags != X509ChainStatusFlags.NoError)
        {
            throw new AttestationException(AttestationFailure.ChainMalformed, $"x5c is not a valid certificate path to the pinned root ({statuses}).");
        }
    }

    /// <summary>The nonce of the leaf's extension 1.2.840.113635.100.8.2, <c>SEQUENCE { [1] EXPLICIT OCTET STRING }</c>, in strict DER.</summary>
    private static byte[] NonceOf(X509Certificate2 leaf)
    {
        X509Extension extension = leaf.Extensions[NonceOid]
            ?? throw new AttestationException(AttestationFailure.ExtensionMissing, "The leaf certificate carries no App Attest nonce extension.");
        try
        {
            var outer = new AsnReader(extension.RawData, AsnEncodingRules.DER);
            AsnReader sequence = outer.ReadSequence();
            outer.ThrowIfNotEmpty();
            AsnReader tagged = sequence.ReadSequence(new Asn1Tag(TagClass.ContextSpecific, 1, isConstructed: true));
            sequence.ThrowIfNotEmpty();
            byte[] nonce = tagged.ReadOctetString();
            tagged.ThrowIfNotEmpty();
            return nonce.Length == SHA256.HashSizeInBytes
                ? nonce
                : throw new AttestationException(AttestationFailure.ExtensionMalformed, $"The App Attest nonce has {nonce.Length} bytes, not {SHA256.HashSizeInBytes}.");
        }
        catch (AsnContentException e)
        {
            throw new AttestationException(AttestationFailure.ExtensionMalformed, "The App Attest nonce extension is not strict DER of SEQUENCE { [1] EXPLICIT OCTET STRING }.", e);
        }
    }

    /// <summary>The leaf's public key as an uncompressed P-256 point.</summary>
    private static byte[] P256PointOf(X509Certificate2 leaf)
    {
        using ECDsa? key = leaf.GetECDsaPublicKey();
        ECParameters? parameters = key?.ExportParameters(includePrivateParameters: false);
        if (parameters is not { } p || p.Curve.Oid?.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
        {
            throw new AttestationException(AttestationFailure.UnsupportedKeyType, "The attested key is not an EC P-256 key.");
        }

        return [0x04, .. p.Q.X!, .. p.Q.Y!];
    }

    private static AppAttestEnvironment EnvironmentOf(byte[] aaguid, AppleAppAttestPolicy policy)
    {
        if (aaguid.AsSpan().SequenceEqual(ProductionAaguid))
        {
            return AppAttestEnvironment.Production;
        }

        if (aaguid.AsSpan().SequenceEqual(DevelopmentAaguid))
        {
            return policy.AllowDevelopment
                ? AppAttestEnvironment.Development
                : throw new AttestationException(AttestationFailure.EnvironmentNotAllowed, "The key is from App Attest's development environment; the policy allows only production.");
        }

        throw new AttestationException(AttestationFailure.EnvironmentNotAllowed, $"The aaguid {Convert.ToHexStringLower(aaguid)} names no App Attest environment.");
    }
}
