namespace ModelSeal.Fuzz;

/// <summary>
/// The fuzz targets by name. Each harness feeds one input to one parser and catches exactly the failure types that
/// parser documents; any other exception escapes, and afl-fuzz records the input as a crash.
/// </summary>
internal static class Targets
{
    private static readonly Dictionary<string, Action<byte[]>> All = new(StringComparer.Ordinal)
    {
        ["header"] = ContainerTargets.Header,
        ["model"] = ContainerTargets.Model,
        ["stream"] = ContainerTargets.Stream,
        ["reader"] = ContainerTargets.Reader,
        ["keyfile"] = ContainerTargets.KeyFile,
        ["release-json"] = ServerTargets.ReleaseJson,
        ["admin-json"] = ServerTargets.AdminJson,
        ["credential"] = ClientTargets.Credential,
        ["lease"] = ClientTargets.Lease,
        ["android-chain"] = AttestationTargets.AndroidChain,
        ["key-description"] = AttestationTargets.KeyDescriptionValue,
        ["apple-attestation"] = AttestationTargets.AppleAttestation,
        ["apple-assertion"] = AttestationTargets.AppleAssertion,
        ["authenticator-data"] = AttestationTargets.AuthenticatorData,
    };

    public static IEnumerable<string> Names => All.Keys;

    public static Action<byte[]>? Find(string name) => All.GetValueOrDefault(name);
}
