namespace ModelSeal.Server.Tests;

/// <summary>
/// External services some tests need, described by environment variables that <c>.ci/run</c> sets when
/// <c>CI=true</c> (it installs and starts them). Locally a test whose service is not configured is skipped, saying how
/// to enable it; under CI a missing service is a failure, so a broken CI set-up cannot pass by skipping.
/// </summary>
internal static class Services
{
    public const string PostgresVariable = "MODELSEAL_TEST_POSTGRES";
    public const string Pkcs11ModuleVariable = "MODELSEAL_TEST_PKCS11_MODULE";
    public const string Pkcs11TokenVariable = "MODELSEAL_TEST_PKCS11_TOKEN";
    public const string Pkcs11PinVariable = "MODELSEAL_TEST_PKCS11_PIN";

    /// <summary>True when running under CI (<c>CI=true</c>), where every service must be present.</summary>
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>The PostgreSQL connection string of the test database (<c>MODELSEAL_TEST_POSTGRES</c>).</summary>
    public static string RequirePostgres() =>
        Require(PostgresVariable, "a PostgreSQL test database", $"{PostgresVariable}=\"Host=127.0.0.1;Port=5432;Username=…;Password=…;Database=…\"");

    /// <summary>The PKCS#11 module, token label and user PIN of a test token (SoftHSM2 in CI).</summary>
    public static Pkcs11Token RequirePkcs11()
    {
        const string how = $"{Pkcs11ModuleVariable}=/usr/lib/softhsm/libsofthsm2.so, {Pkcs11TokenVariable}=<token label>, {Pkcs11PinVariable}=<user PIN> (and SOFTHSM2_CONF for SoftHSM2)";
        string module = Require(Pkcs11ModuleVariable, "a PKCS#11 test token", how);
        string token = Require(Pkcs11TokenVariable, "a PKCS#11 test token", how);
        string pin = Require(Pkcs11PinVariable, "a PKCS#11 test token", how);
        if (!File.Exists(module))
        {
            Assert.Fail($"{Pkcs11ModuleVariable} names '{module}', which does not exist.");
        }

        Secrets.Add("PKCS#11 PIN", pin);
        return new Pkcs11Token(module, token, pin);
    }

    private static string Require(string variable, string what, string how)
    {
        string? value = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrWhiteSpace(value))
        {
            return value;
        }

        if (InCi)
        {
            Assert.Fail($"CI=true but {variable} is not set: .ci/run should have started {what}; see its output.");
        }

        Assert.Skip($"Needs {what}: set {how}, or run CI=true ./.ci/run, which installs and starts one.");
        return null!;
    }

    /// <summary>
    /// The full path of Node.js's <paramref name="name"/> (node, npm) on PATH; skips the test when it is missing, unless
    /// under CI, where it fails. <paramref name="purpose"/> says which tests need it.
    /// </summary>
    public static string RequireTool(string name, string purpose)
    {
        if (ModelSeal.Oidc.ProcessTools.FindOnPath(name, Environment.GetEnvironmentVariable("PATH")) is { } found)
        {
            return found;
        }

        if (InCi)
        {
            Assert.Fail($"CI=true but '{name}' is not on PATH: {purpose} needs Node.js 20 or later with npm (.ci/run installs Debian's nodejs and npm).");
        }

        Assert.Skip($"Needs Node.js 20+ with npm on PATH ('{name}' not found) for {purpose}.");
        return null!;
    }
}

/// <summary>A PKCS#11 token to test against. <see cref="ToString"/> leaves out the PIN.</summary>
internal sealed record Pkcs11Token(string Module, string Label, string Pin)
{
    public override string ToString() => $"PKCS#11 token '{Label}' in {Module}";
}
