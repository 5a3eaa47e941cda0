using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using ModelSeal.Hpke;

namespace ModelSeal.Benchmarks;

/// <summary>
/// HPKE (RFC 9180 base mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) as the key server and the client use
/// it: a 32-byte data key sealed to a device's P-256 public key with the key-release info and aad, and opened again.
/// </summary>
[Config(typeof(OperationConfig))]
public class HpkeBenchmarks : IDisposable
{
    private static readonly DateTimeOffset LeaseExpiresAt = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private HpkeKeyPair? _device;
    private ModelKey? _dataKey;
    private byte[] _publicKey = [];
    private byte[] _dataKeyBytes = [];
    private byte[] _info = [];
    private byte[] _aad = [];
    private byte[] _enc = [];
    private byte[] _ciphertext = [];

    private HpkeKeyPair Device => _device ?? throw new InvalidOperationException("GlobalSetup has not run.");

    private ModelKey DataKey => _dataKey ?? throw new InvalidOperationException("GlobalSetup has not run.");

    [GlobalSetup]
    public void GlobalSetup()
    {
        _device = HpkeKeyPair.Generate();
        _publicKey = _device.PublicKey.Encoded.ToArray();
        _dataKey = ModelKey.Generate("bench-key");
        _dataKeyBytes = new byte[ModelKey.SizeInBytes];
        _dataKey.Export(_dataKeyBytes);
        _info = KeyRelease.Info("bench-model", "1", _dataKey.KeyId, "bench-subject");
        _aad = KeyRelease.Aad(LeaseExpiresAt);
        (_enc, _ciphertext) = Hpke.Hpke.Seal(HpkePublicKey.Import(_publicKey), _info, _aad, _dataKeyBytes);

        byte[] opened = Hpke.Hpke.Open(_device, _enc, _info, _aad, _ciphertext);
        if (!opened.AsSpan().SequenceEqual(_dataKeyBytes))
        {
            throw new InvalidOperationException("HPKE did not open to the sealed key.");
        }
    }

    [GlobalCleanup]
    public void GlobalCleanup() => Dispose();

    /// <summary>HpkePublicKey.Import and Hpke.Seal: validate and import the public key, generate an ephemeral P-256 key, ECDH, key schedule, AES-GCM of 32 bytes.</summary>
    [Benchmark(Baseline = true)]
    public int Seal_32_byte_key()
    {
        (byte[] enc, byte[] ciphertext) = Hpke.Hpke.Seal(HpkePublicKey.Import(_publicKey), _info, _aad, _dataKeyBytes);
        return enc.Length + ciphertext.Length;
    }

    /// <summary>Hpke.Open: validate the encapsulated key, ECDH through the device key's IHpkeKeyAgreement (HpkeKeyPair: import the point, ECDH), key schedule, AES-GCM open.</summary>
    [Benchmark]
    public int Open_32_byte_key()
    {
        byte[] key = Hpke.Hpke.Open(Device, _enc, _info, _aad, _ciphertext);
        CryptographicOperations.ZeroMemory(key);
        return key.Length;
    }

    /// <summary>KeyRelease.Seal, what the key server runs per release of a device it has not seen (it keeps the imported key of known ones): builds info and aad from the fields, then Hpke.Seal.</summary>
    [Benchmark]
    public int KeyRelease_seal()
    {
        (byte[] enc, byte[] sealedKey) = KeyRelease.Seal(DataKey, HpkePublicKey.Import(_publicKey), "bench-model", "1", "bench-subject", LeaseExpiresAt);
        return enc.Length + sealedKey.Length;
    }

    /// <summary>KeyRelease.Open, what the client runs per release: builds info and aad, Hpke.Open, imports the ModelKey.</summary>
    [Benchmark]
    public int KeyRelease_open()
    {
        using ModelKey key = KeyRelease.Open(Device, _enc, _ciphertext, "bench-model", "1", DataKey.KeyId, "bench-subject", LeaseExpiresAt);
        return key.KeyId.Length;
    }

    public void Dispose()
    {
        _device?.Dispose();
        _device = null;
        _dataKey?.Dispose();
        _dataKey = null;
        CryptographicOperations.ZeroMemory(_dataKeyBytes);
        GC.SuppressFinalize(this);
    }
}
