using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace ModelSeal.Server.Tests.Oidc;

/// <summary>
/// The test provider's signing keys: jwks.json in its state directory, a JWKS with private keys, first key of each
/// algorithm signs (tests/oidc-provider/provider.mjs). A rotation writes new keys first and keeps the old ones after.
/// </summary>
internal static class OidcSigningKeys
{
    public const string FileName = "jwks.json";

    /// <summary>The <c>kid</c> of every key in the file, in order.</summary>
    public static IReadOnlyList<string> Kids(string stateDirectory) =>
        Read(stateDirectory).Select(key => (string)key!["kid"]!).ToList();

    /// <summary>The <c>kid</c> of the key that signs with <paramref name="alg"/>: the first key of that algorithm.</summary>
    public static string SigningKid(string stateDirectory, string alg) =>
        Read(stateDirectory).Where(key => (string?)key!["alg"] == alg).Select(key => (string)key!["kid"]!).First();

    /// <summary>
    /// Puts a new EC P-256 key (ES256) and a new RSA-2048 key (RS256) in front of the existing ones, atomically; returns
    /// their kids. The provider reads the file when it starts.
    /// </summary>
    public static IReadOnlyList<string> Rotate(string stateDirectory)
    {
        JsonArray old = Read(stateDirectory);
        JsonObject ec = NewEcKey();
        JsonObject rsa = NewRsaKey();
        var keys = new JsonArray(ec, rsa);
        foreach (JsonNode? key in old)
        {
            keys.Add(key!.DeepClone());
        }

        string file = Path.Combine(stateDirectory, FileName);
        string temporary = file + ".rotate.tmp";
        File.WriteAllText(temporary, new JsonObject { ["keys"] = keys }.ToJsonString());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.Move(temporary, file, overwrite: true);
        return [(string)ec["kid"]!, (string)rsa["kid"]!];
    }

    private static JsonArray Read(string stateDirectory)
    {
        string file = Path.Combine(stateDirectory, FileName);
        JsonNode? jwks = JsonNode.Parse(File.ReadAllText(file));
        return jwks?["keys"] as JsonArray ?? throw new InvalidOperationException($"{file} holds no JWKS.");
    }

    private static JsonObject NewEcKey()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        ECParameters p = key.ExportParameters(includePrivateParameters: true);
        return new JsonObject
        {
            ["kty"] = "EC",
            ["crv"] = "P-256",
            ["x"] = Base64Url.EncodeToString(p.Q.X!),
            ["y"] = Base64Url.EncodeToString(p.Q.Y!),
            ["d"] = Base64Url.EncodeToString(p.D!),
            ["kid"] = NewKid("ec"),
            ["use"] = "sig",
            ["alg"] = "ES256",
        };
    }

    private static JsonObject NewRsaKey()
    {
        using var key = RSA.Create(2048);
        RSAParameters p = key.ExportParameters(includePrivateParameters: true);
        return new JsonObject
        {
            ["kty"] = "RSA",
            ["n"] = UInt(p.Modulus!),
            ["e"] = UInt(p.Exponent!),
            ["d"] = UInt(p.D!),
            ["p"] = UInt(p.P!),
            ["q"] = UInt(p.Q!),
            ["dp"] = UInt(p.DP!),
            ["dq"] = UInt(p.DQ!),
            ["qi"] = UInt(p.InverseQ!),
            ["kid"] = NewKid("rsa"),
            ["use"] = "sig",
            ["alg"] = "RS256",
        };
    }

    /// <summary>Base64urlUInt (RFC 7518 §2): the big-endian value without leading zero octets.</summary>
    private static string UInt(byte[] value)
    {
        int skip = 0;
        while (skip < value.Length - 1 && value[skip] == 0)
        {
            skip++;
        }

        return Base64Url.EncodeToString(value.AsSpan(skip));
    }

    private static string NewKid(string prefix) => $"{prefix}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";
}
