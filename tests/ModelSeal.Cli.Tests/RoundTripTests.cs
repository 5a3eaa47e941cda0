using System.Text.Json;

namespace ModelSeal.Cli.Tests;

public sealed class RoundTripTests
{
    [Fact]
    public async Task Encrypt_verify_decrypt_round_trips_the_sample_model_byte_for_byte()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        using ModelKey loaded = KeyFile.Read(key);

        CliResult encrypt = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", "classifier", "--model-version", "1", "--out", ws["model.mseal"]);
        Assert.Equal(ExitCodes.Success, encrypt.ExitCode);
        Assert.Equal(string.Empty, encrypt.Stderr);
        Assert.StartsWith($"sealed {RepoPaths.SampleModel} → {ws["model.mseal"]}: classifier 1 (onnx, 578,966 bytes, 36 chunks, key {loaded.KeyId}) in ", encrypt.Stdout, StringComparison.Ordinal);
        Assert.EndsWith(" ms" + Environment.NewLine, encrypt.Stdout, StringComparison.Ordinal);

        CliResult verify = await Workspace.RunAsync("verify", ws["model.mseal"], "--key", key);
        Assert.Equal(ExitCodes.Success, verify.ExitCode);
        Assert.StartsWith($"verified {ws["model.mseal"]}: classifier 1 (onnx, 578,966 bytes, 36 chunks, key {loaded.KeyId})", verify.Stdout, StringComparison.Ordinal);
        Assert.Equal(["dev.key", "model.mseal"], ws.FileNames());

        CliResult decrypt = await Workspace.RunAsync("decrypt", ws["model.mseal"], "--key", key, "--out", ws["model.onnx"]);
        Assert.Equal(ExitCodes.Success, decrypt.ExitCode);
        Assert.Equal(string.Empty, decrypt.Stderr);
        Assert.StartsWith($"decrypted {ws["model.mseal"]} → {ws["model.onnx"]}: classifier 1", decrypt.Stdout, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllBytes(RepoPaths.SampleModel), File.ReadAllBytes(ws["model.onnx"]));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ws["model.onnx"]));
        }

        Assert.Equal(["dev.key", "model.mseal", "model.onnx"], ws.FileNames());
    }

    [Fact]
    public async Task Streaming_decrypt_as_from_a_pipe_round_trips_too()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);

        CliResult decrypt = await Workspace.RunAsync(
            ["decrypt", sealedModel, "--key", key, "--out", ws["model.onnx"]],
            interactive: false,
            configure: c => c with { StreamingDecrypt = true });

        Assert.True(decrypt.ExitCode == ExitCodes.Success, decrypt.ToString());
        Assert.Equal(File.ReadAllBytes(RepoPaths.SampleModel), File.ReadAllBytes(ws["model.onnx"]));
        Assert.Equal(["dev.key", "model.mseal", "model.onnx"], ws.FileNames());
    }

    [Fact]
    public async Task Json_outputs_are_single_json_objects_with_the_facts()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync(keyId: "json-key");

        CliResult encrypt = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", "classifier", "--model-version", "2.0", "--out", ws["m.mseal"], "--json");
        CliResult verify = await Workspace.RunAsync("verify", ws["m.mseal"], "--key", key, "--json");
        CliResult decrypt = await Workspace.RunAsync("decrypt", ws["m.mseal"], "--key", key, "--out", ws["m.onnx"], "--json");

        foreach ((CliResult result, string command) in new[] { (encrypt, "encrypt"), (verify, "verify"), (decrypt, "decrypt") })
        {
            Assert.True(result.ExitCode == ExitCodes.Success, result.ToString());
            Assert.Single(result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            JsonElement json = result.Json();
            Assert.Equal(JsonValueKind.Object, json.ValueKind);
            Assert.Equal(command, json.GetProperty("command").GetString());
            Assert.Equal("classifier", json.GetProperty("modelId").GetString());
            Assert.Equal("2.0", json.GetProperty("modelVersion").GetString());
            Assert.Equal("json-key", json.GetProperty("keyId").GetString());
            Assert.Equal("onnx", json.GetProperty("contentType").GetString());
            Assert.Equal(578_966, json.GetProperty("plaintextLength").GetInt64());
            Assert.Equal(36, json.GetProperty("chunkCount").GetInt64());
            Assert.True(json.GetProperty("elapsedMilliseconds").GetInt64() >= 0);
            Assert.True(json.GetProperty("sealedAt").TryGetDateTimeOffset(out _));
        }

        Assert.Equal(new FileInfo(ws["m.mseal"]).Length, encrypt.Json().GetProperty("sealedLength").GetInt64());
        Assert.Equal(ws["m.mseal"], encrypt.Json().GetProperty("output").GetString());
        Assert.True(verify.Json().GetProperty("authenticated").GetBoolean());
        Assert.True(decrypt.Json().GetProperty("authenticated").GetBoolean());
        Assert.Equal(File.ReadAllBytes(RepoPaths.SampleModel), File.ReadAllBytes(ws["m.onnx"]));
    }

    [Fact]
    public async Task Decrypt_with_force_replaces_an_existing_output()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        File.WriteAllText(ws["model.onnx"], "old");

        CliResult result = await Workspace.RunAsync("decrypt", sealedModel, "--key", key, "--out", ws["model.onnx"], "--force");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Equal(File.ReadAllBytes(RepoPaths.SampleModel), File.ReadAllBytes(ws["model.onnx"]));
    }

    [Fact]
    public async Task An_empty_model_round_trips()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        File.WriteAllBytes(ws["empty.bin"], []);

        CliResult encrypt = await Workspace.RunAsync("encrypt", ws["empty.bin"], "--key", key, "--model-id", "e", "--model-version", "0", "--out", ws["e.mseal"]);
        CliResult decrypt = await Workspace.RunAsync("decrypt", ws["e.mseal"], "--key", key, "--out", ws["e.bin"]);

        Assert.True(encrypt.ExitCode == ExitCodes.Success, encrypt.ToString());
        Assert.Contains("(unknown, 0 bytes, 1 chunk,", encrypt.Stdout, StringComparison.Ordinal);
        Assert.True(decrypt.ExitCode == ExitCodes.Success, decrypt.ToString());
        Assert.Empty(File.ReadAllBytes(ws["e.bin"]));
    }

    [Fact]
    public async Task Sealing_a_sealed_model_again_warns()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);

        CliResult result = await Workspace.RunAsync("encrypt", sealedModel, "--key", key, "--model-id", "x", "--model-version", "1", "--out", ws["twice.mseal"]);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.StartsWith("warning: ", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("already a sealed model", result.Stderr, StringComparison.Ordinal);
    }
}
