// Opens the model that ModelSeal.Build sealed at build time: the sealed file ships next to the app (bin/, publish/),
// the plaintext .onnx does not. Usage: SealedApp [KEY-FILE]   (default: $MODELSEAL_KEY_FILE)
// The key file stands in for the key server: a real app gets the key with ModelSeal.Client (docs/client.md).
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ModelSeal;
using ModelSeal.OnnxRuntime;

string? keyFile = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("MODELSEAL_KEY_FILE");
if (string.IsNullOrEmpty(keyFile))
{
    Console.Error.WriteLine("usage: SealedApp KEY-FILE (or set MODELSEAL_KEY_FILE)");
    return 2;
}

string sealedPath = Path.Combine(AppContext.BaseDirectory, "classifier.onnx.mseal");
using SealedOrtSession model = await SealedInferenceSession.LoadAsync(sealedPath, new KeyFileSource(keyFile));
Console.WriteLine($"opened {Path.GetFileName(sealedPath)}: model {model.Header.ModelId} version {model.Header.ModelVersion} ({model.Mode})");

// One inference on a fixed synthetic image (the classifier takes N x 3 x 48 x 192).
string inputName = model.Session.InputNames[0];
long[] shape = [.. model.Session.InputMetadata[inputName].Dimensions.Select(d => d < 0 ? 1L : d)];
float[] pixels = new float[shape.Aggregate(1L, (a, b) => a * b)];
for (int i = 0; i < pixels.Length; i++)
{
    pixels[i] = (i % 251) / 251f;
}

using OrtValue input = OrtValue.CreateTensorValueFromMemory(pixels, shape);
using var runOptions = new RunOptions();
using IDisposableReadOnlyCollection<OrtValue> outputs = model.Session.Run(runOptions, [inputName], [input], model.Session.OutputNames);
OrtTensorTypeAndShapeInfo info = outputs[0].GetTensorTypeAndShape();
ReadOnlySpan<float> scores = outputs[0].GetTensorDataAsSpan<float>();
double checksum = 0;
foreach (float score in scores)
{
    checksum += score;
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"output {model.Session.OutputNames[0]} shape [{string.Join(", ", info.Shape)}] scores [{string.Join(", ", scores.ToArray().Select(s => s.ToString("F6", CultureInfo.InvariantCulture)))}] checksum {checksum:F6}"));
return 0;
