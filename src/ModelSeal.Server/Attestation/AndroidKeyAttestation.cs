using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ModelSeal.Server.Attestation;

/// <summary>
/// What the server trusts for Android Key Attestation: the pinned root keys (Google's hardware attestation roots, or a
/// test CA in tests) and the certificate status list (serials revoked or suspended, in the format of
/// <c>https://android.googleapis.com/attestation/status</c>: lowercase hex without leading zeros).
/// </summary>
internal sealed class AndroidTrust
{
    private readonly HashSet<string> _rootKeys;
    private readonly HashSet<string> _revokedSerials;

    public AndroidTrust(IEnumerable<X509Certificate2> roots, IEnumerable<string>? revokedSerials = null)
    {
        ArgumentNullException.ThrowIfNull(roots);
        _rootKeys = roots.Select(r => Convert.ToBase64String(r.PublicKey.ExportSubjectPublicKeyInfo())).ToHashSet(StringComparer.Ordinal);
        _revokedSerials = (revokedSerials ?? []).Select(s => s.TrimStart('0').ToLowerInvariant()).ToHashSet(StringComparer.Ordinal);
    }

    public bool IsPinnedRoot(X509Certificate2 certificate) => _rootKeys.Contains(Convert.ToBase64String(certificate.PublicKey.ExportSubjectPublicKeyInfo()));

    public bool IsRevoked(X509Certificate2 certificate) => _revokedSerials.Contains(Convert.ToHexStringLower(certificate.SerialNumberBytes.Span).TrimStart('0'));

    /// <summary>The serials of a status list document (<c>{"entries": {"serial": {"status": …}}}</c>): every entry counts.</summary>
    public static IReadOnlyList<string> SerialsOf(System.Text.Json.JsonElement statusList) =>
        statusList.TryGetProperty("entries", out System.Text.Json.JsonElement entries) && entries.ValueKind == System.Text.Json.JsonValueKind.Object
            ? [.. entries.EnumerateObject().Select(e => e.Name)]
            : [];
}

/// <summary>
/// Android Key Attestation evidence checked as Google's verifier checks it, <b>by position</b> rather than with a
/// general X.509 path builder (which rejects valid attestation chains: their leaves have odd issuer names, validity
/// periods and no CA extensions). A pure function of the chain, the trust, and the verification time.
/// </summary>
internal static class AndroidKeyAttestation
{
    /// <summary>Chains longer than this are refused (real ones have 3 to 8 certificates, ATTEST_KEY chains included).</summary>
    public const int MaxChainLength = 10;

    /// <summary>Largest certificate accepted, in bytes.</summary>
    public const int MaxCertificateSize = 16 * 1024;

    /// <summary>
    /// Checks the chain (leaf first, root last): at most <see cref="MaxChainLength"/> DER certificates; the last one's
    /// key is a pinned root key; each certificate is signed by the next one's key; all are inside their validity at
    /// <paramref name="time"/>; none is on the status list; every certificate after the leaf that carries an
    /// attestation is an ATTEST_KEY key; the leaf's attestation parses under strict DER.
    /// </summary>
    /// <returns>The leaf's attestation and its public key (SubjectPublicKeyInfo).</returns>
    /// <exception cref="AttestationException">The evidence is refused; <see cref="AttestationException.Failure"/> says why.</exception>
    public static AndroidAttestation Verify(IReadOnlyList<byte[]> chain, AndroidTrust trust, DateTimeOffset time)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentNullException.ThrowIfNull(trust);
        if (chain.Count < 2 || chain.Count > MaxChainLength)
        {
            throw new AttestationException(AttestationFailure.ChainMalformed, $"An attestation chain has 2 to {MaxChainLength} certificates; this one has {chain.Count}.");
        }

        var certificates = new List<X509Certificate2>(chain.Count);
        try
        {
            foreach (byte[] der in chain)
            {
                certificates.Add(Load(der, certificates.Count));
            }

            if (!trust.IsPinnedRoot(certificates[^1]))
            {
                throw new AttestationException(AttestationFailure.UntrustedRoot, $"The chain ends in '{certificates[^1].Subject}', whose key is not a pinned attestation root.");
            }

            for (int i = 0; i < certificates.Count; i++)
            {
                X509Certificate2 certificate = certificates[i];
                if (i < certificates.Count - 1)
                {
                    CheckSignature(chain[i], certificates[i + 1], i);
                }

                if (time.UtcDateTime < certificate.NotBefore.ToUniversalTime() || time.UtcDateTime > certificate.NotAfter.ToUniversalTime())
                {
                    throw new AttestationException(AttestationFailure.CertificateExpired, $"Certificate {i} is valid from {certificate.NotBefore.ToUniversalTime():O} to {certificate.NotAfter.ToUniversalTime():O}, not at {time.UtcDateTime:O}.");
                }

                if (trust.IsRevoked(certificate))
                {
                    throw new AttestationException(AttestationFailure.CertificateRevoked, $"Certificate {i} (serial {certificate.SerialNumber}) is on the status list.");
                }
            }

            KeyDescription leaf = DescriptionOf(certificates[0]) ?? throw new AttestationException(AttestationFailure.ExtensionMissing, "The leaf certificate carries no key attestation extension.");
            for (int i = 1; i < certificates.Count - 1; i++)
            {
                if (DescriptionOf(certificates[i]) is { } attestKey && !attestKey.HasPurpose(AuthorizationList.PurposeAttestKey))
                {
                    throw new AttestationException(AttestationFailure.AttestKeyRule, $"Certificate {i} carries an attestation but its key is not an ATTEST_KEY key, so it may not certify the leaf.");
                }
            }

            return new AndroidAttestation(leaf, certificates[0].PublicKey.Oid.Value ?? string.Empty, certificates[0].PublicKey.ExportSubjectPublicKeyInfo());
        }
        finally
        {
            foreach (X509Certificate2 certificate in certificates)
            {
                certificate.Dispose();
            }
        }
    }

    private static X509Certificate2 Load(byte[] der, int index)
    {
        if (der.Length > MaxCertificateSize)
        {
            throw new AttestationException(AttestationFailure.ChainMalformed, $"Certificate {index} is {der.Length} bytes; at most {MaxCertificateSize} are accepted.");
        }

        try
        {
            // Strict DER for the outer structure: one SEQUENCE of exactly these bytes.
            var reader = new AsnReader(der, AsnEncodingRules.DER);
            reader.ReadSequence();
            reader.ThrowIfNotEmpty();
            X509Certificate2 certificate = X509CertificateLoader.LoadCertificate(der);
            try
            {
                // The loader decodes the validity lazily: a malformed time would throw later, from NotBefore or
                // NotAfter, in the validity check (the root is pinned by key, not by signature; docs/fuzzing.md finding 4).
                _ = certificate.NotBefore;
                _ = certificate.NotAfter;
                return certificate;
            }
            catch (CryptographicException)
            {
                certificate.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
            throw new AttestationException(AttestationFailure.ChainMalformed, $"Certificate {index} is not an X.509 certificate in DER.", e);
        }
    }

    private static KeyDescription? DescriptionOf(X509Certificate2 certificate)
    {
        X509Extension? extension = certificate.Extensions[KeyDescription.Oid];
        return extension is null ? null : KeyDescription.Parse(extension.RawData);
    }

    /// <summary>Verifies the signature of <paramref name="der"/> (certificate <paramref name="index"/>) under <paramref name="issuer"/>'s key.</summary>
    private static void CheckSignature(byte[] der, X509Certificate2 issuer, int index)
    {
        ReadOnlyMemory<byte> tbs;
        string algorithm;
        bool hasParameters;
        byte[] signature;
        try
        {
            var certificate = new AsnReader(der, AsnEncodingRules.DER).ReadSequence();
            tbs = certificate.ReadEncodedValue();
            AsnReader algorithmIdentifier = certificate.ReadSequence();
            algorithm = algorithmIdentifier.ReadObjectIdentifier();
            hasParameters = algorithmIdentifier.HasData;
            if (hasParameters)
            {
                algorithmIdentifier.ReadNull();
            }

            algorithmIdentifier.ThrowIfNotEmpty();
            signature = certificate.ReadBitString(out int unused);
            if (unused != 0)
            {
                throw new AsnContentException("The signature has unused bits.");
            }

            certificate.ThrowIfNotEmpty();
        }
        catch (AsnContentException e)
        {
            throw new AttestationException(AttestationFailure.ChainMalformed, $"Certificate {index} is not a certificate in DER ({e.Message}).", e);
        }

        bool valid;
        try
        {
            valid = algorithm switch
            {
                // RFC 5758: the ECDSA algorithm identifiers have no parameters.
                "1.2.840.10045.4.3.2" when !hasParameters => VerifyEcdsa(issuer, tbs.Span, signature, HashAlgorithmName.SHA256),
                "1.2.840.10045.4.3.3" when !hasParameters => VerifyEcdsa(issuer, tbs.Span, signature, HashAlgorithmName.SHA384),
                "1.2.840.10045.4.3.4" when !hasParameters => VerifyEcdsa(issuer, tbs.Span, signature, HashAlgorithmName.SHA512),
                "1.2.840.113549.1.1.11" => VerifyRsa(issuer, tbs.Span, signature, HashAlgorithmName.SHA256),
                "1.2.840.113549.1.1.12" => VerifyRsa(issuer, tbs.Span, signature, HashAlgorithmName.SHA384),
                "1.2.840.113549.1.1.13" => VerifyRsa(issuer, tbs.Span, signature, HashAlgorithmName.SHA512),
                _ => throw new AttestationException(AttestationFailure.SignatureAlgorithmUnsupported, $"Certificate {index} is signed with algorithm {algorithm}{(hasParameters ? " (with parameters)" : string.Empty)}, which this verifier does not check."),
            };
        }
        catch (CryptographicException e)
        {
            // The loader does not check the public key: an EC point off its curve, say, fails only here (docs/fuzzing.md finding 3).
            throw new AttestationException(AttestationFailure.ChainMalformed, $"The public key of certificate {index + 1} is not a usable key ({e.Message}).", e);
        }

        if (!valid)
        {
            throw new AttestationException(AttestationFailure.SignatureInvalid, $"The signature of certificate {index} does not verify under the key of certificate {index + 1}.");
        }
    }

    private static bool VerifyEcdsa(X509Certificate2 issuer, ReadOnlySpan<byte> data, byte[] signature, HashAlgorithmName hash)
    {
        using ECDsa? key = issuer.GetECDsaPublicKey();
        return key is not null && key.VerifyData(data, signature, hash, DSASignatureFormat.Rfc3279DerSequence);
    }

    private static bool VerifyRsa(X509Certificate2 issuer, ReadOnlySpan<byte> data, byte[] signature, HashAlgorithmName hash)
    {
        using RSA? key = issuer.GetRSAPublicKey();
        return key is not null && key.VerifyData(data, signature, hash, RSASignaturePadding.Pkcs1);
    }
}

/// <summary>A verified chain's leaf: its attestation and its public key (algorithm OID and SubjectPublicKeyInfo).</summary>
internal sealed record AndroidAttestation(KeyDescription Description, string PublicKeyAlgorithm, byte[] SubjectPublicKeyInfo);
