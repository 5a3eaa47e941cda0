using ModelSeal.OrtBench;

// Usage: dotnet run -c Release --project bench/ModelSeal.OrtBench -- [--runs 7] [--out file.md] [--main-only] [--modes M1,M2,...] [--model PATH]... [--keep DIR]
// Measures ONNX Runtime session creation, plaintext vs sealed, each measurement in a fresh child process (this program
// re-launched with --child MODE MODEL SEALED KEYFILE). See bench/README.md.
if (args.Length > 0 && args[0] == "--child")
{
    return await Child.RunAsync(args[1..]);
}

return await Parent.RunAsync(args);
