using System.Globalization;
using System.Text.Json;

namespace ModelSeal.Cli.Tests;

public sealed class InspectTests
{
    [Fact]
    public async Task Inspect_prints_the_header_facts_and_says_it_authenticates_nothing()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync(keyId: "inspect-key");
        string sealedModel = await ws.SealSampleAsync(key);
        long fileLength = new FileInfo(sealedModel).Length;

        CliResult result = await Workspace.RunAsync("inspect", sealedModel);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Equal(string.Empty, result.Stderr);
        string o = result.Stdout;
        Assert.Contains("format version 1", o, StringComparison.Ordinal);
        Assert.Contains("model id       classifier", o, StringComparison.Ordinal);
        Assert.Contains("model version  1", o, StringComparison.Ordinal);
        Assert.Contains("key id         inspect-key", o, StringComparison.Ordinal);
        Assert.Contains("content type   onnx", o, StringComparison.Ordinal);
        Assert.Contains("model size     578,966 bytes", o, StringComparison.Ordinal);
        Assert.Contains("chunks         36", o, StringComparison.Ordinal);
        Assert.Contains("(file: " + fileLength.ToString("N0", CultureInfo.InvariantCulture) + " bytes)", o, StringComparison.Ordinal);
        Assert.Matches(@"sealed at      \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", o);
        Assert.Contains("does not authenticate anything", o, StringComparison.Ordinal);
        Assert.DoesNotContain("warning:", o, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Inspect_json_has_every_header_field()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync(keyId: "inspect-key");
        string sealedModel = await ws.SealSampleAsync(key);
        long fileLength = new FileInfo(sealedModel).Length;

        CliResult result = await Workspace.RunAsync("inspect", sealedModel, "--json");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        JsonElement json = result.Json();
        Assert.Equal("inspect", json.GetProperty("command").GetString());
        Assert.Equal(1, json.GetProperty("formatVersion").GetInt32());
        int headerLength = json.GetProperty("headerLength").GetInt32();
        Assert.InRange(headerLength, 12, 4096);
        Assert.Equal("classifier", json.GetProperty("modelId").GetString());
        Assert.Equal("1", json.GetProperty("modelVersion").GetString());
        Assert.Equal("inspect-key", json.GetProperty("keyId").GetString());
        Assert.Equal("onnx", json.GetProperty("contentType").GetString());
        Assert.Equal(578_966, json.GetProperty("plaintextLength").GetInt64());
        Assert.Equal(36, json.GetProperty("chunkCount").GetInt64());
        Assert.Equal(56 + 578_966 + (16 * 36), json.GetProperty("payloadLength").GetInt64());
        Assert.Equal(headerLength + json.GetProperty("payloadLength").GetInt64(), json.GetProperty("sealedLength").GetInt64());
        Assert.Equal(fileLength, json.GetProperty("fileLength").GetInt64());
        Assert.Equal(fileLength, json.GetProperty("sealedLength").GetInt64());
        Assert.True(json.GetProperty("sealedAt").TryGetDateTimeOffset(out DateTimeOffset sealedAt));
        Assert.InRange(sealedAt, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddMinutes(1));
        Assert.True(json.GetProperty("lengthMatches").GetBoolean());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("warning").ValueKind);
        Assert.False(json.GetProperty("authenticated").GetBoolean());
    }

    [Fact]
    public async Task Inspect_of_a_truncated_file_warns_but_exits_0()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        byte[] bytes = File.ReadAllBytes(sealedModel);
        File.WriteAllBytes(sealedModel, bytes[..^100]);

        CliResult human = await Workspace.RunAsync("inspect", sealedModel);
        CliResult json = await Workspace.RunAsync("inspect", sealedModel, "--json");

        Assert.Equal(ExitCodes.Success, human.ExitCode);
        Assert.Contains("warning: the file is 100 bytes shorter than the header declares (truncated?)", human.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("warning", human.Stdout, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Success, json.ExitCode);
        Assert.False(json.Json().GetProperty("lengthMatches").GetBoolean());
        Assert.Contains("shorter", json.Json().GetProperty("warning").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Inspect_of_a_file_with_trailing_data_warns()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        File.AppendAllText(sealedModel, "x");

        CliResult result = await Workspace.RunAsync("inspect", sealedModel);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Contains("warning: the file is 1 byte longer than the header declares", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Inspect_of_a_plain_onnx_file_is_a_format_error_with_a_hint()
    {
        CliResult result = await Workspace.RunAsync("inspect", RepoPaths.SampleModel);

        Assert.Equal(ExitCodes.FormatError, result.ExitCode);
        Asserts.ErrorWithHint(result, "is not a sealed model");
        Assert.Contains("hint: seal a model first: modelseal encrypt", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public async Task Inspect_of_an_unsupported_format_version_is_a_format_error()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        byte[] bytes = File.ReadAllBytes(sealedModel);
        bytes[9] = 2; // format version 2
        File.WriteAllBytes(sealedModel, bytes);

        CliResult inspect = await Workspace.RunAsync("inspect", sealedModel);
        CliResult verify = await Workspace.RunAsync("verify", sealedModel, "--key", key);

        Assert.Equal(ExitCodes.FormatError, inspect.ExitCode);
        Asserts.ErrorWithHint(inspect, "version 2 is not supported");
        Assert.Equal(ExitCodes.FormatError, verify.ExitCode);
    }

    [Fact]
    public async Task Inspect_of_an_empty_file_is_a_format_error()
    {
        using var ws = new Workspace();
        File.WriteAllBytes(ws["empty.mseal"], []);

        CliResult result = await Workspace.RunAsync("inspect", ws["empty.mseal"]);

        Assert.Equal(ExitCodes.FormatError, result.ExitCode);
        Asserts.ErrorWithHint(result, "is not a sealed model");
    }
}
