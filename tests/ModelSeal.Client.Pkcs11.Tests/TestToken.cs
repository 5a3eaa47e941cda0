using System.Security.Cryptography;
using ModelSeal.Client.Pkcs11;
using ModelSeal.Pkcs11;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ModelSeal.Client.Pkcs11.Tests;

/// <summary>
/// The PKCS#11 test token (SoftHSM2), described by the variables <c>.ci/run</c> sets when <c>CI=true</c> (as for the
/// key server's PKCS#11 tests, tests/ModelSeal.Server.Tests/Services.cs). Locally a test is skipped when they are not
/// set, saying how to set them; under CI their absence is a failure, so a broken CI set-up cannot pass by skipping.
/// Every test uses key labels of its own, so tests run in parallel on one token.
/// </summary>
internal static class TestToken
{
    public const string ModuleVariable = "MODELSEAL_TEST_PKCS11_MODULE";
    public const string TokenVariable = "MODELSEAL_TEST_PKCS11_TOKEN";
    public const string PinVariable = "MODELSEAL_TEST_PKCS11_PIN";

    /// <summary>Options for a new device key label in the test token, the PIN taken from <see cref="PinVariable"/>.</summary>
    public static Pkcs11DeviceKeyOptions Options(string? keyLabel = null)
    {
        const string how = $"{ModuleVariable}=/usr/lib/softhsm/libsofthsm2.so, {TokenVariable}=<token label>, {PinVariable}=<user PIN> (and SOFTHSM2_CONF for SoftHSM2)";
        string module = Require(ModuleVariable, how);
        string token = Require(TokenVariable, how);
        _ = Require(PinVariable, how);
        if (!File.Exists(module))
        {
            Assert.Fail($"{ModuleVariable} names '{module}', which does not exist.");
        }

        return new Pkcs11DeviceKeyOptions { ModulePath = module, TokenLabel = token, KeyLabel = keyLabel ?? NewLabel(), PinEnvironmentVariable = PinVariable };
    }

    /// <summary>The test token's user PIN (for tests that write it to a file).</summary>
    public static string Pin => Environment.GetEnvironmentVariable(PinVariable)!;

    public static string NewLabel() => "test-device-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    /// <summary>Opens <paramref name="store"/>'s token (and its key) and returns its sessions, to inspect or plant objects.</summary>
    public static async Task<Pkcs11SessionPool> SessionsAsync(Pkcs11DeviceKeyStore store)
    {
        await store.GetOrCreateAsync(TestContext.Current.CancellationToken);
        return store.Sessions!;
    }

    /// <summary>Every object labelled <paramref name="label"/> in the token.</summary>
    public static List<IObjectHandle> Objects(Pkcs11SessionPool sessions, string label, CKO? type = null) => sessions.Use(session =>
        session.FindAllObjects(type is { } t
            ? [sessions.Factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, label), sessions.Factories.ObjectAttributeFactory.Create(CKA.CKA_CLASS, t)]
            : [sessions.Factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, label)]));

    /// <summary>Removes the test's objects from the shared token.</summary>
    public static void Destroy(Pkcs11SessionPool sessions, string label)
    {
        foreach (IObjectHandle handle in Objects(sessions, label))
        {
            sessions.Use(session =>
            {
                session.DestroyObject(handle);
                return 0;
            });
        }
    }

    private static string Require(string variable, string how)
    {
        string? value = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrWhiteSpace(value))
        {
            return value;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"CI=true but {variable} is not set: .ci/run should have started a PKCS#11 test token (SoftHSM2); see its output.");
        }

        Assert.Skip($"Needs a PKCS#11 test token: set {how}, or run CI=true ./.ci/run, which installs and starts one.");
        return null!;
    }
}
