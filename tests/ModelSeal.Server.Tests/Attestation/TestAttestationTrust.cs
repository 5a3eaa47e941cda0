using ModelSeal.Server.Attestation;


namespace ModelSeal.Server.Tests.Attestation;

/// <summary>The server's trust in a TEST-ONLY <see cref="TestAttestationCa"/> (its root pinned), for the verifier's unit tests.</summary>
internal static class TestAttestationTrust
{
    public static AndroidTrust Trust(this TestAttestationCa ca, params string[] revokedSerials) => new([ca.Root], revokedSerials);
}
