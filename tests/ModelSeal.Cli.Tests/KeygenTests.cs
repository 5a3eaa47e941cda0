using System.Text.RegularExpressions;

namespace ModelSeal.Cli.Tests;

public sealed partial class KeygenTests
{
    [Fact]
    public async Task Keygen_creates_an_owner_only_key_file_and_prints_the_id_but_no_key_bytes()
    {
        using var ws = new Workspace();
        string path = ws["dev.key"];

        CliResult result = await Workspace.RunAsync("keygen", "--out", path);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        string content = File.ReadAllText(path);
        string keyHex = KeyLine().Match(content).Groups[1].Value;
        string keyId = KeyIdLine().Match(content).Groups[1].Value;
        Assert.Equal(64, keyHex.Length);
        Assert.Matches("^local-[0-9a-f]{16}$", keyId);
        Assert.Contains(keyId, result.Stdout, StringComparison.Ordinal);
        Assert.Contains(path, result.Stdout, StringComparison.Ordinal);
        foreach (string output in new[] { result.Stdout, result.Stderr })
        {
            Assert.DoesNotContain(keyHex, output, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(keyHex[..16], output, StringComparison.OrdinalIgnoreCase);
        }

        Assert.Equal(string.Empty, result.Stderr);
        using ModelKey key = KeyFile.Read(path);
        Assert.Equal(keyId, key.KeyId);
    }

    [Fact]
    public async Task Keygen_records_the_given_key_id_and_default_ids_differ()
    {
        using var ws = new Workspace();
        await ws.KeygenAsync("a.key", "prod-2025");
        await ws.KeygenAsync("b.key");
        await ws.KeygenAsync("c.key");

        using ModelKey a = KeyFile.Read(ws["a.key"]);
        using ModelKey b = KeyFile.Read(ws["b.key"]);
        using ModelKey c = KeyFile.Read(ws["c.key"]);
        Assert.Equal("prod-2025", a.KeyId);
        Assert.NotEqual(b.KeyId, c.KeyId);
    }

    [Fact]
    public async Task Keygen_refuses_to_overwrite_without_force()
    {
        using var ws = new Workspace();
        string path = await ws.KeygenAsync();
        byte[] before = File.ReadAllBytes(path);

        CliResult result = await Workspace.RunAsync("keygen", "--out", path);

        Assert.Equal(ExitCodes.IoError, result.ExitCode);
        Asserts.ErrorWithHint(result, "already exists");
        Assert.Contains("hint: pass --force to replace it", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(["dev.key"], ws.FileNames());
    }

    [Fact]
    public async Task Keygen_with_force_replaces_the_key()
    {
        using var ws = new Workspace();
        string path = await ws.KeygenAsync();
        byte[] before = File.ReadAllBytes(path);

        CliResult result = await Workspace.RunAsync("keygen", "--out", path, "--force");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.NotEqual(before, File.ReadAllBytes(path));
        Assert.Equal(["dev.key"], ws.FileNames());
    }

    [Theory]
    [InlineData("a/b")]
    [InlineData("-leading-dash")]
    [InlineData("has space")]
    public async Task Keygen_rejects_an_invalid_key_id_as_a_usage_error(string keyId)
    {
        using var ws = new Workspace();

        CliResult result = await Workspace.RunAsync("keygen", "--out", ws["k.key"], "--key-id", keyId);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Asserts.ErrorWithHint(result, "--key-id");
        Assert.Empty(ws.FileNames());
    }

    [Fact]
    public async Task Keygen_into_a_missing_directory_is_an_io_error()
    {
        using var ws = new Workspace();

        CliResult result = await Workspace.RunAsync("keygen", "--out", Path.Combine(ws.Directory, "nope", "k.key"));

        Assert.Equal(ExitCodes.IoError, result.ExitCode);
        Asserts.ErrorWithHint(result, "does not exist");
    }

    [GeneratedRegex("^key: ([0-9a-f]+)$", RegexOptions.Multiline)]
    private static partial Regex KeyLine();

    [GeneratedRegex("^key-id: (.+)$", RegexOptions.Multiline)]
    private static partial Regex KeyIdLine();
}
