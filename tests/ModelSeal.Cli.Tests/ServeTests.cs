namespace ModelSeal.Cli.Tests;

/// <summary><c>modelseal serve</c> in this process, stopped by cancellation.</summary>
public sealed class ServeTests
{
    [Fact]
    public async Task Serve_removes_the_PIN_variable_once_the_server_has_read_it()
    {
        // Needs the SoftHSM2 token that .ci/run sets up (MODELSEAL_TEST_PKCS11_*).
        string? module = Environment.GetEnvironmentVariable("MODELSEAL_TEST_PKCS11_MODULE");
        string? token = Environment.GetEnvironmentVariable("MODELSEAL_TEST_PKCS11_TOKEN");
        string? pin = Environment.GetEnvironmentVariable("MODELSEAL_TEST_PKCS11_PIN");
        if (module is null || token is null || pin is null)
        {
            Assert.Skip("No PKCS#11 token: set MODELSEAL_TEST_PKCS11_MODULE, _TOKEN and _PIN (.ci/run does under CI=true).");
            return;
        }

        using var work = new Workspace();
        string variable = "MODELSEAL_TEST_SERVE_PIN_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, pin);
        using var stop = new CancellationTokenSource();
        var listening = new LineSignal("modelseal key server listening on");
        try
        {
            Task<CliResult> serve = Workspace.RunAsync(
                ["serve", "--data", work["data"], "--urls", "http://127.0.0.1:0", "--admin-credential-out", work["admin.credential"],
                 "--master-key", "pkcs11", "--pkcs11-module", module, "--token-label", token, "--key-label", "serve-" + Guid.NewGuid().ToString("N")[..12], "--pin-env", variable],
                interactive: false,
                context => context with { Out = listening },
                stop.Token);

            await Task.WhenAny(listening.Seen, serve);
            Assert.True(listening.Seen.IsCompleted, (serve.IsCompleted ? (await serve).ToString() : "serve neither started nor failed"));
            Assert.Null(Environment.GetEnvironmentVariable(variable));

            await stop.CancelAsync();
            Assert.Equal(ExitCodes.Success, (await serve).ExitCode);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }
}
