using System.Numerics;
using ModelSeal.Hpke;

namespace ModelSeal.Tests;

/// <summary>
/// The recipient side of HPKE goes through <see cref="IHpkeKeyAgreement"/> only: what Open does with a key agreement
/// that is wrong or failing, and that an invalid encapsulated key never reaches it. (The RFC 9180 vector runs through
/// both <see cref="HpkeKeyPair"/> and <see cref="ArithmeticKeyAgreement"/> in <see cref="HpkeTests"/>.)
/// </summary>
public sealed class HpkeKeyAgreementTests
{
    [Fact]
    public void A_key_agreement_that_returns_a_wrong_secret_makes_Open_fail_with_HpkeOpenException()
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (byte[] enc, byte[] ct) = Hpke.Hpke.Seal(device.PublicKey, "info"u8, "aad"u8, [1, 2, 3]);
        Assert.Equal([1, 2, 3], Hpke.Hpke.Open(new RecordingKeyAgreement(device), enc, "info"u8, "aad"u8, ct));

        var wrong = new RecordingKeyAgreement(device, corrupt: true);
        Assert.Throws<HpkeOpenException>(() => Hpke.Hpke.Open(wrong, enc, "info"u8, "aad"u8, ct));
        Assert.Equal(1, wrong.Calls);

        using ModelKey key = ModelKey.Generate("m.1.k1");
        DateTimeOffset lease = DateTimeOffset.FromUnixTimeSeconds(1_900_000_000);
        (byte[] releaseEnc, byte[] sealedKey) = KeyRelease.Seal(key, device.PublicKey, "m", "1", "device-1", lease);
        using (KeyRelease.Open(new RecordingKeyAgreement(device), releaseEnc, sealedKey, "m", "1", "m.1.k1", "device-1", lease))
        {
        }

        Assert.Throws<HpkeOpenException>(() => KeyRelease.Open(wrong, releaseEnc, sealedKey, "m", "1", "m.1.k1", "device-1", lease));
        Assert.Equal(2, wrong.Calls);
    }

    [Fact]
    public void A_failing_key_agreement_passes_its_exception_through_Open()
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (byte[] enc, byte[] ct) = Hpke.Hpke.Seal(device.PublicKey, [], [], [1]);
        var failure = new InvalidOperationException("the token was removed");
        Assert.Same(failure, Record.Exception(() => Hpke.Hpke.Open(new RecordingKeyAgreement(device, failure), enc, [], [], ct)));

        device.Dispose();
        Assert.IsType<ObjectDisposedException>(Record.Exception(() => Hpke.Hpke.Open(device, enc, [], [], ct)), exactMatch: false);
    }

    [Theory]
    [InlineData("empty")]
    [InlineData("one byte short")]
    [InlineData("one byte long")]
    [InlineData("compressed")]
    [InlineData("prefix 0x05")]
    [InlineData("off the curve")]
    [InlineData("x is the field prime")]
    [InlineData("all zero")]
    public void An_invalid_encapsulated_key_is_refused_before_the_key_agreement_is_called(string change)
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        (byte[] enc, byte[] ct) = Hpke.Hpke.Seal(device.PublicKey, [], [], [1]);
        var recipient = new RecordingKeyAgreement(device);
        Assert.Equal([1], Hpke.Hpke.Open(recipient, enc, [], [], ct));
        Assert.Equal(1, recipient.Calls);

        // (0, y0) is on P-256 (the BCL imports it); written with x = 0 + p it is the same point modulo p, refused only
        // because a coordinate must be below the field prime.
        byte[] fieldPrime = Convert.FromHexString("FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF");
        byte[] y0 = Convert.FromHexString("66485C780E2F83D72433BD5D84A06BB6541C2AF31DAE871728BF856A174F93F4");
        _ = HpkePublicKey.Import([0x04, .. new byte[32], .. y0]);
        byte[] invalid = change switch
        {
            "empty" => [],
            "one byte short" => enc[..^1],
            "one byte long" => [.. enc, 0],
            "compressed" => [(byte)(2 + (enc[^1] & 1)), .. enc[1..33]],
            "prefix 0x05" => [0x05, .. enc[1..]],
            "off the curve" => [.. enc[..^1], (byte)(enc[^1] ^ 1)],
            "x is the field prime" => [0x04, .. fieldPrime, .. y0],
            "all zero" => [0x04, .. new byte[64]],
            _ => throw new ArgumentOutOfRangeException(nameof(change)),
        };
        Assert.Throws<HpkeOpenException>(() => Hpke.Hpke.Open(recipient, invalid, [], [], ct));
        Assert.Equal(1, recipient.Calls);
    }

    [Fact]
    public void The_software_key_agreement_needs_a_32_byte_destination()
    {
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair peer = HpkeKeyPair.Generate();
        Assert.Throws<ArgumentException>(() => device.DeriveSharedSecret(peer.PublicKey, new byte[31]));
        Assert.Throws<ArgumentException>(() => device.DeriveSharedSecret(peer.PublicKey, new byte[33]));
        byte[] ours = new byte[32], theirs = new byte[32];
        device.DeriveSharedSecret(peer.PublicKey, ours);
        peer.DeriveSharedSecret(device.PublicKey, theirs);
        Assert.Equal(ours, theirs);
        Assert.NotEqual(new byte[32], ours);
    }
}

/// <summary>
/// Wraps a key agreement, recording the peer keys it is called with; optionally corrupts its result or fails instead.
/// Not thread-safe (one test at a time).
/// </summary>
internal sealed class RecordingKeyAgreement(IHpkeKeyAgreement inner, Exception? failure = null, bool corrupt = false) : IHpkeKeyAgreement
{
    public List<byte[]> Peers { get; } = [];

    public int Calls => Peers.Count;

    public HpkePublicKey PublicKey => inner.PublicKey;

    public void DeriveSharedSecret(HpkePublicKey peerPublicKey, Span<byte> sharedSecret)
    {
        Peers.Add(peerPublicKey.Encoded.ToArray());
        if (failure is not null)
        {
            throw failure;
        }

        inner.DeriveSharedSecret(peerPublicKey, sharedSecret);
        if (corrupt)
        {
            sharedSecret[^1] ^= 1;
        }
    }
}

/// <summary>
/// P-256 ECDH by textbook affine arithmetic on <see cref="BigInteger"/>s: no <c>ECDiffieHellman</c>, no
/// <see cref="HpkeKeyPair"/>. Slow and not constant-time; a key agreement the core cannot reach behind, standing in for
/// a hardware key.
/// </summary>
internal sealed class ArithmeticKeyAgreement : IHpkeKeyAgreement
{
    private static readonly BigInteger P = Parse("FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF");
    private static readonly BigInteger B = Parse("5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B");
    private static readonly (BigInteger X, BigInteger Y) G = (
        Parse("6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"),
        Parse("4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5"));

    private readonly BigInteger _privateKey;

    public ArithmeticKeyAgreement(ReadOnlySpan<byte> privateKey)
    {
        _privateKey = new BigInteger(privateKey, isUnsigned: true, isBigEndian: true);
        (BigInteger x, BigInteger y) = Multiply(_privateKey, G) ?? throw new ArgumentException("Zero private key.", nameof(privateKey));
        PublicKey = HpkePublicKey.Import([0x04, .. Bytes(x), .. Bytes(y)]);
    }

    public HpkePublicKey PublicKey { get; }

    public void DeriveSharedSecret(HpkePublicKey peerPublicKey, Span<byte> sharedSecret)
    {
        // HpkePublicKey has validated the point; checked again here, as a key that trusts nothing it is given would.
        ReadOnlySpan<byte> point = peerPublicKey.Encoded.Span;
        if (point.Length != 65 || point[0] != 0x04 || sharedSecret.Length != 32)
        {
            throw new ArgumentException("Expected a 65-byte uncompressed point and a 32-byte destination.");
        }

        var peer = (X: new BigInteger(point[1..33], isUnsigned: true, isBigEndian: true), Y: new BigInteger(point[33..], isUnsigned: true, isBigEndian: true));
        if (peer.X >= P || peer.Y >= P || Mod(peer.Y * peer.Y) != Mod((peer.X * peer.X * peer.X) - (3 * peer.X) + B))
        {
            throw new ArgumentException("Not a point on P-256.", nameof(peerPublicKey));
        }

        (BigInteger x, _) = Multiply(_privateKey, peer) ?? throw new ArgumentException("The shared point is at infinity.", nameof(peerPublicKey));
        Bytes(x).CopyTo(sharedSecret);
    }

    private static (BigInteger X, BigInteger Y)? Multiply(BigInteger scalar, (BigInteger X, BigInteger Y) point)
    {
        (BigInteger X, BigInteger Y)? result = null;
        for (int bit = 255; bit >= 0; bit--)
        {
            result = Add(result, result);
            if (!(scalar >> bit).IsEven)
            {
                result = Add(result, point);
            }
        }

        return result;
    }

    private static (BigInteger X, BigInteger Y)? Add((BigInteger X, BigInteger Y)? first, (BigInteger X, BigInteger Y)? second)
    {
        if (first is not { } a)
        {
            return second;
        }

        if (second is not { } b)
        {
            return first;
        }

        BigInteger slope;
        if (a.X == b.X)
        {
            if (Mod(a.Y + b.Y).IsZero)
            {
                return null;
            }

            slope = Mod(((3 * a.X * a.X) - 3) * Inverse(2 * a.Y));
        }
        else
        {
            slope = Mod((b.Y - a.Y) * Inverse(b.X - a.X));
        }

        BigInteger x = Mod((slope * slope) - a.X - b.X);
        return (x, Mod((slope * (a.X - x)) - a.Y));
    }

    private static BigInteger Inverse(BigInteger value) => BigInteger.ModPow(Mod(value), P - 2, P);

    private static BigInteger Mod(BigInteger value) => ((value % P) + P) % P;

    private static byte[] Bytes(BigInteger value)
    {
        byte[] bytes = new byte[32];
        value.TryWriteBytes(bytes.AsSpan(32 - value.GetByteCount(isUnsigned: true)), out _, isUnsigned: true, isBigEndian: true);
        return bytes;
    }

    private static BigInteger Parse(string hex) => new(Convert.FromHexString(hex), isUnsigned: true, isBigEndian: true);
}
