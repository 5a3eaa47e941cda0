// The minimal app: load a sealed model into ONNX Runtime with a key from the ModelSeal key server.
// Usage: dotnet run --project samples/ConsoleApp -- MODEL.mseal SERVER-URL LICENCE-ID CREDENTIAL-FILE
using Microsoft.Extensions.DependencyInjection;
using ModelSeal;
using ModelSeal.OnnxRuntime;

await using ServiceProvider services = new ServiceCollection()
    .AddModelSeal(options =>
    {
        options.ServerUrl = args[1];
        options.LicenceId = args[2];
        options.CredentialFile = args[3];          // owner-only file from 'modelseal licence add'
        options.DeviceKeyFile = "device.key";       // this device's P-256 key (owner-only, created once)
        options.LeaseCacheDirectory = "leases";     // offline use until the lease expires
    })
    .BuildServiceProvider();

// Fetches the key (sealed to the device key), decrypts in memory off this thread, creates the session, zeroes the bytes.
using SealedOrtSession model = await SealedInferenceSession.LoadAsync(args[0], services.GetRequiredService<IModelKeySource>());
foreach (var input in model.Session.InputMetadata)
{
    Console.WriteLine($"{model.Header.ModelId} {model.Header.ModelVersion}: input {input.Key} [{string.Join(", ", input.Value.Dimensions)}]");
}
