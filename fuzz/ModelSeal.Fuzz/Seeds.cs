using System.Buffers.Text;
using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using ModelSeal.Client;
using ModelSeal.Hpke;

namespace ModelSeal.Fuzz;

/// <summary>
/// Writes the generated seed files (fuzz/seeds/TARGET/gen-*): models sealed with the fixed key, request bodies, a key
/// file, credential files and leases sealed to the fixed device key. Deterministic except for the sealing salts and
/// HPKE's ephemeral keys. The copies of tests/vectors/modelseal beside them are made by fuzz/run --update-seeds.
/// </summary>
internal static class Seeds
{
    public static async Task WriteAsync(string root)
    {
        using ModelKey key = Fixtures.Key();
        using HpkeKeyPair device = Fixtures.DeviceKey();
        string devicePublicKey = Base64Url.EncodeToString(device.PublicKey.Encoded.Span);

        byte[] onnxLike = [0x08, 0x07, 0x12, 0x04, (byte)'f', (byte)'u', (byte)'z', (byte)'z', 0x3A, 0x02, 0x10, 0x01];
        var models = new (string Name, byte[] Plaintext, DateTimeOffset? SealedAt)[]
        {
            ("empty", [], null),
            ("1-byte", [0x2A], new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)),
            ("onnx-like", onnxLike, null),
            ("2-chunks", Enumerable.Range(0, 16385).Select(i => (byte)i).ToArray(), null),
        };
        foreach (string target in (string[])["header", "model", "stream", "reader"])
        {
            foreach ((string name, byte[] plaintext, DateTimeOffset? sealedAt) in models)
            {
                using var sealedModel = new MemoryStream();
                await SealedModel.SealAsync(new MemoryStream(plaintext), sealedModel, key, new SealOptions { ModelId = Fixtures.ModelId, ModelVersion = Fixtures.Version, SealedAt = sealedAt });
                Write(root, target, $"gen-{name}.mseal", sealedModel.ToArray());
            }
        }

        string keyFiles = Fixtures.ScratchDirectory("seeds");
        string keyPath = Path.Combine(keyFiles, "key");
        KeyFile.Write(keyPath, key, overwrite: true);
        Write(root, "keyfile", "gen-key.txt", await File.ReadAllBytesAsync(keyPath));
        Write(root, "keyfile", "gen-no-comment.txt", Encoding.ASCII.GetBytes($"modelseal-key-v1\nkey-id: k.1\nkey: {new string('0', 64)}"));

        Write(root, "release-json", "gen-token-licence.json", $$"""{"grantType":"licence","licenceId":"lic_0123456789abcdef","credential":"cred_0123456789"}""");
        Write(root, "release-json", "gen-token-admin.json", """{"grantType":"admin","credential":"admin-secret"}""");
        Write(root, "release-json", "gen-release.json", $$"""{"modelId":"{{Fixtures.ModelId}}","version":"{{Fixtures.Version}}","devicePublicKey":"{{devicePublicKey}}","nonce":"AAAAAAAAAAAAAAAAAAAAAA","protocol":2}""");
        Write(root, "release-json", "gen-release-latest.json", $$"""{"modelId":"m","version":"latest","devicePublicKey":"{{devicePublicKey}}=","nonce":"AAAAAAAAAAAAAAAAAAAAAA","protocol":2}""");

        Write(root, "admin-json", "gen-model.json", """{"modelId":"fuzz-model"}""");
        Write(root, "admin-json", "gen-version.json", $$"""{"version":"2.0.0","publisherPublicKey":"{{devicePublicKey}}","nonce":"AAAAAAAAAAAAAAAAAAAAAA","protocol":2}""");
        Write(root, "admin-json", "gen-version-auto.json", $$"""{"publisherPublicKey":"{{devicePublicKey}}","nonce":"AAAAAAAAAAAAAAAAAAAAAA","protocol":2}""");
        Write(root, "admin-json", "gen-licence.json", """{"subject":"customer 1","models":["fuzz-model","other.model"],"notBefore":"2026-01-01T00:00:00Z","expiresAt":"2027-01-01T00:00:00+02:00","maxDevices":3}""");
        Write(root, "admin-json", "gen-licence-oidc.json", """{"subject":"sub-1","models":["*"],"maxDevices":1,"issuer":"https://issuer.example/"}""");

        Write(root, "credential", "gen-credential.txt", "cred_0123456789abcdef\n");
        Write(root, "credential", "gen-credential-spaces.txt", "  cred_x \r\n\t");

        string leaseDirectory = Path.Combine(Fixtures.ScratchDirectory("seeds"), "leases");
        foreach ((string name, DateTimeOffset expiresAt) in new[] { ("valid", Fixtures.LeaseExpiresAt), ("expired", Fixtures.Now.AddDays(-1)) })
        {
            (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(key, device.PublicKey, Fixtures.ModelId, Fixtures.Version, Fixtures.Subject, expiresAt);
            if (Directory.Exists(leaseDirectory))
            {
                Directory.Delete(leaseDirectory, recursive: true);
            }

            var cache = new FileLeaseCache(leaseDirectory);
            await cache.StoreAsync(new ModelLease(Fixtures.ModelId, Fixtures.Version, Fixtures.KeyId, Fixtures.Subject, Base64Url.EncodeToString(enc), Base64Url.EncodeToString(sealedKey), expiresAt));
            Write(root, "lease", $"gen-lease-{name}.json", await File.ReadAllBytesAsync(Directory.GetFiles(leaseDirectory).Single()));
        }

        Directory.Delete(keyFiles, recursive: true);
        WriteAttestationSeeds(root);
    }

    /// <summary>
    /// The attestation targets' seeds, copied from the real samples of tests/attestation (sample-*, named after the
    /// sample): each Android chain, each App Attest attestation and assertion with its context selector in front; the
    /// key attestation extension of every certificate that carries one; the authenticator data of every App Attest
    /// object. One generated seed: a chain of <see cref="ModelSeal.Server.Attestation.AndroidKeyAttestation.MaxChainLength"/> + 1 certificates.
    /// </summary>
    private static void WriteAttestationSeeds(string root)
    {
        foreach (string target in (string[])["android-chain", "key-description", "apple-attestation", "apple-assertion", "authenticator-data"])
        {
            foreach (string old in Directory.Exists(Path.Combine(root, target)) ? Directory.GetFiles(Path.Combine(root, target), "sample-*") : [])
            {
                File.Delete(old);
            }
        }

        var descriptions = new HashSet<string>(StringComparer.Ordinal);
        IReadOnlyList<string> chains = AttestationTargets.AndroidSampleNames;
        for (int i = 0; i < chains.Count; i++)
        {
            var certificates = new X509Certificate2Collection();
            certificates.ImportFromPemFile(AttestationTargets.Sample("android", chains[i]));
            string stem = Path.GetFileNameWithoutExtension(chains[i]);
            Write(root, "android-chain", $"sample-{stem}.bin", AttestationTargets.JoinChain((byte)i, certificates.Select(c => c.RawData)));
            if (i == 0)
            {
                Write(root, "android-chain", "gen-too-long.bin", AttestationTargets.JoinChain(0, Enumerable.Repeat(certificates[0].RawData, ModelSeal.Server.Attestation.AndroidKeyAttestation.MaxChainLength + 1)));
            }

            for (int c = 0; c < certificates.Count; c++)
            {
                if (certificates[c].Extensions[ModelSeal.Server.Attestation.KeyDescription.Oid] is { } extension && descriptions.Add(Convert.ToHexString(SHA256.HashData(extension.RawData))))
                {
                    Write(root, "key-description", $"sample-{stem}-cert{c}.der", extension.RawData);
                }
            }

            foreach (X509Certificate2 certificate in certificates)
            {
                certificate.Dispose();
            }
        }

        IReadOnlyList<string> attestations = AttestationTargets.AppleAttestationNames;
        for (int i = 0; i < attestations.Count; i++)
        {
            byte[] attestation = File.ReadAllBytes(AttestationTargets.Sample("apple", attestations[i]));
            string stem = Path.GetFileNameWithoutExtension(attestations[i]);
            Write(root, "apple-attestation", $"sample-{stem}.bin", [(byte)i, .. attestation]);
            Write(root, "authenticator-data", $"sample-{stem}.bin", ByteStringMember(attestation, "authData"));
        }

        IReadOnlyList<string> assertions = AttestationTargets.AppleAssertionNames;
        for (int i = 0; i < assertions.Count; i++)
        {
            byte[] assertion = File.ReadAllBytes(AttestationTargets.Sample("apple", assertions[i]));
            string stem = Path.GetFileNameWithoutExtension(assertions[i]);
            Write(root, "apple-assertion", $"sample-{stem}.bin", [(byte)i, .. assertion]);
            Write(root, "authenticator-data", $"sample-{stem}.bin", ByteStringMember(assertion, "authenticatorData"));
        }
    }

    /// <summary>The byte string of a top-level map member of an App Attest object.</summary>
    private static byte[] ByteStringMember(byte[] cbor, string name)
    {
        var reader = new CborReader(cbor);
        int count = reader.ReadStartMap() ?? throw new InvalidDataException("An App Attest sample is an indefinite-length map.");
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadTextString() == name)
            {
                return reader.ReadByteString();
            }

            reader.SkipValue();
        }

        throw new InvalidDataException($"An App Attest sample has no member '{name}'.");
    }

    private static void Write(string root, string target, string name, string content) => Write(root, target, name, Encoding.UTF8.GetBytes(content));

    private static void Write(string root, string target, string name, byte[] content)
    {
        string directory = Path.Combine(root, target);
        Directory.CreateDirectory(directory);
        File.WriteAllBytes(Path.Combine(directory, name), content);
    }
}
