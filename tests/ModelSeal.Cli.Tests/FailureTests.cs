using System.Security.Cryptography;

namespace ModelSeal.Cli.Tests;

public sealed class FailureTests
{
    [Fact]
    public async Task Serve_refuses_an_incomplete_hsm_configuration_before_creating_anything()
    {
        using var ws = new Workspace();
        string data = ws["data"];

        CliResult missingModule = await Workspace.RunAsync("serve", "--data", data, "--urls", "http://127.0.0.1:0", "--master-key", "pkcs11");
        CliResult unknownProvider = await Workspace.RunAsync("serve", "--data", data, "--master-key", "hsm");

        Assert.Equal(ExitCodes.Usage, missingModule.ExitCode);
        Asserts.ErrorWithHint(missingModule, "Pkcs11Module is not set");
        Assert.Contains("--pkcs11-module", missingModule.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, unknownProvider.ExitCode);
        Assert.Contains("'hsm'", unknownProvider.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "nothing may be created for a refused configuration");
    }

    [Fact]
    public async Task Serve_refuses_a_first_start_without_admin_credential_out_or_with_one_inside_the_data_directory()
    {
        using var ws = new Workspace();
        string data = ws["data"];

        CliResult inside = await Workspace.RunAsync("serve", "--data", data, "--urls", "http://127.0.0.1:0", "--admin-credential-out", Path.Combine(data, "admin.credential"));
        Assert.Equal(ExitCodes.Usage, inside.ExitCode);
        Asserts.ErrorWithHint(inside, "inside the data directory");
        Assert.False(Directory.Exists(data), "nothing may be created for a refused configuration");

        CliResult missing = await Workspace.RunAsync("serve", "--data", data, "--urls", "http://127.0.0.1:0");
        Assert.Equal(ExitCodes.Usage, missing.ExitCode);
        Asserts.ErrorWithHint(missing, "--admin-credential-out FILE");
        Assert.False(File.Exists(Path.Combine(data, "admin.credential")), "no admin credential in the data directory");
    }

    [Fact]
    public async Task Serve_refuses_an_incomplete_database_configuration_before_creating_anything()
    {
        using var ws = new Workspace();
        string data = ws["data"];
        string unset = "MODELSEAL_TEST_UNSET_" + Guid.NewGuid().ToString("N");

        CliResult noConnection = await Workspace.RunAsync("serve", "--data", data, "--urls", "http://127.0.0.1:0", "--database", "postgres");
        CliResult unsetVariable = await Workspace.RunAsync("serve", "--data", data, "--urls", "http://127.0.0.1:0", "--database", "postgres", "--connection-string-env", unset);
        CliResult unknown = await Workspace.RunAsync("serve", "--data", data, "--database", "mysql");
        CliResult noRate = await Workspace.RunAsync("serve", "--data", data, "--urls", "http://127.0.0.1:0", "--requests-per-minute", "0");

        Assert.Equal(ExitCodes.Usage, noConnection.ExitCode);
        Asserts.ErrorWithHint(noConnection, "exactly one of");
        Assert.Contains("--database and --connection-string-env", noConnection.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, unsetVariable.ExitCode);
        Asserts.ErrorWithHint(unsetVariable, unset);
        Assert.Equal(ExitCodes.Usage, unknown.ExitCode);
        Assert.Contains("'mysql'", unknown.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, noRate.ExitCode);
        Asserts.ErrorWithHint(noRate, "at least 1 per minute");
        Assert.False(Directory.Exists(data), "nothing may be created for a refused configuration");
    }

    [Fact]
    public async Task Serve_refuses_a_bad_config_file_naming_the_file_or_the_key_and_flags_override_it()
    {
        using var ws = new Workspace();
        string data = ws["data"];
        string missing = ws["missing.json"];
        string typo = ws["typo.json"];
        File.WriteAllText(typo, """{ "Database": { "Provder": "postgres" } }""");
        string unsafeFile = ws["unsafe.json"];
        File.WriteAllText(unsafeFile, """{ "Urls": "http://0.0.0.0:5380", "ReleasesPerMinutePerSubject": 0 }""");

        CliResult noFile = await Workspace.RunAsync("serve", "--data", data, "--config", missing);
        CliResult unknownKey = await Workspace.RunAsync("serve", "--data", data, "--config", typo);
        CliResult fromFile = await Workspace.RunAsync("serve", "--data", data, "--config", unsafeFile);
        CliResult flagWins = await Workspace.RunAsync("serve", "--data", data, "--config", unsafeFile, "--urls", "http://127.0.0.1:0");

        Assert.Equal(ExitCodes.Usage, noFile.ExitCode);
        Asserts.ErrorWithHint(noFile, missing);
        Assert.Equal(ExitCodes.Usage, unknownKey.ExitCode);
        Asserts.ErrorWithHint(unknownKey, "'Database:Provder'");
        Asserts.ErrorWithHint(fromFile, "http://0.0.0.0:5380");
        Asserts.ErrorWithHint(flagWins, "at least 1 per minute");
        Assert.False(Directory.Exists(data), "nothing may be created for a refused configuration");
    }

    [Fact]
    public async Task Migrations_refuse_an_incomplete_target_before_creating_anything()
    {
        using var ws = new Workspace();
        string data = ws["data"];

        CliResult noModule = await Workspace.RunAsync("master-key", "migrate", "--data", data, "--token-label", "t", "--pin-env", "X");
        string unset = "MODELSEAL_TEST_UNSET_" + Guid.NewGuid().ToString("N");
        CliResult noDatabase = await Workspace.RunAsync("database", "migrate", "--data", data, "--connection-string-env", unset);
        CliResult noVariable = await Workspace.RunAsync("database", "migrate", "--data", data);

        Assert.Equal(ExitCodes.Usage, noModule.ExitCode);
        Asserts.ErrorWithHint(noModule, "Pkcs11Module is not set");
        Assert.Contains("stop the key server", noModule.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, noDatabase.ExitCode);
        Asserts.ErrorWithHint(noDatabase, unset);
        Assert.Equal(ExitCodes.Usage, noVariable.ExitCode);
        Assert.Contains("--connection-string-env", noVariable.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "nothing may be created for a refused configuration");
    }

    [Fact]
    public async Task A_key_with_another_id_is_a_key_error()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync("a.key");
        string other = await ws.KeygenAsync("b.key");
        string sealedModel = await ws.SealSampleAsync(key);

        CliResult verify = await Workspace.RunAsync("verify", sealedModel, "--key", other);
        CliResult decrypt = await Workspace.RunAsync("decrypt", sealedModel, "--key", other, "--out", ws["out.onnx"]);

        Assert.Equal(ExitCodes.KeyError, verify.ExitCode);
        Asserts.ErrorWithHint(verify, "is sealed with key");
        Assert.Contains("hint: pass --key with the key file for key id", verify.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.KeyError, decrypt.ExitCode);
        Assert.False(File.Exists(ws["out.onnx"]));
    }

    [Fact]
    public async Task A_different_key_with_the_same_id_fails_authentication()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync("a.key", keyId: "shared-id");
        string sealedModel = await ws.SealSampleAsync(key);
        byte[] otherBytes = RandomNumberGenerator.GetBytes(ModelKey.SizeInBytes);
        using (ModelKey impostor = ModelKey.Import(otherBytes, "shared-id"))
        {
            KeyFile.Write(ws["impostor.key"], impostor);
        }

        CliResult verify = await Workspace.RunAsync("verify", sealedModel, "--key", ws["impostor.key"]);
        CliResult decrypt = await Workspace.RunAsync("decrypt", sealedModel, "--key", ws["impostor.key"], "--out", ws["out.onnx"]);

        Assert.Equal(ExitCodes.AuthenticationFailed, verify.ExitCode);
        Asserts.ErrorWithHint(verify, "could not be authenticated");
        Assert.Contains("hint: check that --key is the key this model was sealed with", verify.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.AuthenticationFailed, decrypt.ExitCode);
        Assert.Equal(["a.key", "impostor.key", "model.mseal"], ws.FileNames());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_tampered_payload_fails_verify_and_decrypt_and_leaves_no_output(bool streaming)
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        int headerLength;
        using (FileStream stream = File.OpenRead(sealedModel))
        {
            headerLength = (await SealedModelHeader.ReadAsync(stream)).Length;
        }

        byte[] bytes = File.ReadAllBytes(sealedModel);
        bytes[headerLength + 56 + (20 * 16400) + 123] ^= 0x04; // a bit in chunk 20 of 36: earlier chunks are fine
        File.WriteAllBytes(sealedModel, bytes);
        Func<CliContext, CliContext> configure = c => streaming ? c with { StreamingDecrypt = true } : c;

        CliResult verify = await Workspace.RunAsync(["verify", sealedModel, "--key", key], false, configure);
        CliResult decrypt = await Workspace.RunAsync(["decrypt", sealedModel, "--key", key, "--out", ws["out.onnx"]], false, configure);

        Assert.Equal(ExitCodes.AuthenticationFailed, verify.ExitCode);
        Asserts.ErrorWithHint(verify, "could not be authenticated");
        Assert.Equal(ExitCodes.AuthenticationFailed, decrypt.ExitCode);
        Asserts.ErrorWithHint(decrypt, "could not be authenticated");
        Assert.Equal(string.Empty, decrypt.Stdout);
        Assert.Equal(["dev.key", "model.mseal"], ws.FileNames()); // no output, no temporary file
    }

    [Fact]
    public async Task A_tampered_decrypt_leaves_an_existing_output_untouched_even_with_force()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        byte[] bytes = File.ReadAllBytes(sealedModel);
        bytes[^1] ^= 1;
        File.WriteAllBytes(sealedModel, bytes);
        File.WriteAllText(ws["out.onnx"], "previous");

        CliResult decrypt = await Workspace.RunAsync("decrypt", sealedModel, "--key", key, "--out", ws["out.onnx"], "--force");

        Assert.Equal(ExitCodes.AuthenticationFailed, decrypt.ExitCode);
        Assert.Equal("previous", File.ReadAllText(ws["out.onnx"]));
        Assert.Equal(["dev.key", "model.mseal", "out.onnx"], ws.FileNames());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(16400)]
    [InlineData(300_000)]
    public async Task A_truncated_file_fails_authentication_and_says_it_is_truncated(int cut)
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        byte[] bytes = File.ReadAllBytes(sealedModel);
        File.WriteAllBytes(sealedModel, bytes[..^cut]);

        CliResult verify = await Workspace.RunAsync("verify", sealedModel, "--key", key);
        CliResult decrypt = await Workspace.RunAsync("decrypt", sealedModel, "--key", key, "--out", ws["out.onnx"]);

        // The length is visible without the key: the message says so rather than "altered or truncated".
        string expected = $"is truncated: its header declares {Text.Count(bytes.Length)} bytes, the file has {Text.Count(bytes.Length - cut)} ({Text.Count(cut)} missing)";
        Assert.Equal(ExitCodes.AuthenticationFailed, verify.ExitCode);
        Asserts.ErrorWithHint(verify, expected);
        Assert.Equal(ExitCodes.AuthenticationFailed, decrypt.ExitCode);
        Asserts.ErrorWithHint(decrypt, expected);
        Assert.DoesNotContain("altered", verify.Stderr + decrypt.Stderr, StringComparison.Ordinal);
        Assert.Equal(["dev.key", "model.mseal"], ws.FileNames());
    }

    [Fact]
    public async Task An_extended_file_fails_and_says_how_many_bytes_are_extra()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        long length = new FileInfo(sealedModel).Length;
        File.AppendAllText(sealedModel, "trailing");

        CliResult verify = await Workspace.RunAsync("verify", sealedModel, "--key", key);

        Assert.Equal(ExitCodes.AuthenticationFailed, verify.ExitCode);
        Asserts.ErrorWithHint(verify, $"is longer than its header declares: expected {Text.Count(length)} bytes, found {Text.Count(length + 8)} (8 extra)");
    }

    [Fact]
    public async Task Existing_outputs_are_refused_without_force_and_left_unchanged()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        File.WriteAllText(ws["existing"], "keep me");

        CliResult encrypt = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", "m", "--model-version", "1", "--out", ws["existing"]);
        CliResult decrypt = await Workspace.RunAsync("decrypt", sealedModel, "--key", key, "--out", ws["existing"]);

        foreach (CliResult result in new[] { encrypt, decrypt })
        {
            Assert.Equal(ExitCodes.IoError, result.ExitCode);
            Asserts.ErrorWithHint(result, "already exists");
            Assert.Contains("hint: pass --force to replace it", result.Stderr, StringComparison.Ordinal);
        }

        Assert.Equal("keep me", File.ReadAllText(ws["existing"]));
        Assert.Equal(["dev.key", "existing", "model.mseal"], ws.FileNames());
    }

    [Theory]
    [InlineData("encrypt")]
    [InlineData("decrypt")]
    [InlineData("verify")]
    [InlineData("inspect")]
    public async Task A_missing_input_is_an_io_error(string verb)
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string[] args = verb switch
        {
            "encrypt" => ["encrypt", ws["missing.onnx"], "--key", key, "--model-id", "m", "--model-version", "1", "--out", ws["o"]],
            "decrypt" => ["decrypt", ws["missing.mseal"], "--key", key, "--out", ws["o"]],
            "verify" => ["verify", ws["missing.mseal"], "--key", key],
            _ => ["inspect", ws["missing.mseal"]],
        };

        CliResult result = await Workspace.RunAsync(args);

        Assert.Equal(ExitCodes.IoError, result.ExitCode);
        Asserts.ErrorWithHint(result, "does not exist");
        Assert.Equal(["dev.key"], ws.FileNames());
    }

    [Fact]
    public async Task A_missing_key_file_is_a_key_error()
    {
        using var ws = new Workspace();

        CliResult result = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--key", ws["none.key"], "--model-id", "m", "--model-version", "1", "--out", ws["o.mseal"]);

        Assert.Equal(ExitCodes.KeyError, result.ExitCode);
        Asserts.ErrorWithHint(result, "does not exist");
        Assert.Contains("modelseal keygen", result.Stderr, StringComparison.Ordinal);
        Assert.Empty(ws.FileNames());
    }

    [Fact]
    public async Task A_malformed_key_file_is_a_key_error()
    {
        using var ws = new Workspace();
        File.WriteAllText(ws["bad.key"], "not a key\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(ws["bad.key"], UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        CliResult result = await Workspace.RunAsync("verify", RepoPaths.SampleModel, "--key", ws["bad.key"]);

        Assert.Equal(ExitCodes.KeyError, result.ExitCode);
        Asserts.ErrorWithHint(result, "is not a ModelSeal key file");
    }

    [Fact]
    public async Task A_key_file_readable_by_others_is_a_key_error_with_a_chmod_hint()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix permissions only.");
            return;
        }

        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        CliResult result = await Workspace.RunAsync("verify", sealedModel, "--key", key);

        Assert.Equal(ExitCodes.KeyError, result.ExitCode);
        Asserts.ErrorWithHint(result, "accessible by other users");
        Assert.Contains($"hint: make it owner-only: chmod 600 '{key}'", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a/b")]
    [InlineData("")]
    [InlineData(".hidden")]
    public async Task An_invalid_model_id_is_a_usage_error(string modelId)
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();

        CliResult result = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", modelId, "--model-version", "1", "--out", ws["o.mseal"]);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Asserts.ErrorWithHint(result, "--model-id");
        Assert.Contains("hint: run 'modelseal encrypt --help'", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
        Assert.Equal(["dev.key"], ws.FileNames());
    }

    [Fact]
    public async Task An_invalid_model_version_is_a_usage_error()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();

        CliResult result = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", "m", "--model-version", new string('1', 65), "--out", ws["o.mseal"]);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Asserts.ErrorWithHint(result, "--model-version");
    }

    [Fact]
    public async Task A_missing_required_option_is_a_usage_error_on_stderr()
    {
        CliResult result = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--model-id", "m", "--model-version", "1", "--out", "x.mseal");

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Asserts.ErrorWithHint(result, "--key");
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("verify", "--bogus")]
    public async Task Unknown_verbs_and_options_are_usage_errors(params string[] args)
    {
        CliResult result = await Workspace.RunAsync(args.Where(a => a.Length > 0).ToArray());

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.StartsWith("error: ", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint: run 'modelseal ", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public async Task Output_equal_to_input_is_refused()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        byte[] before = File.ReadAllBytes(sealedModel);

        CliResult decrypt = await Workspace.RunAsync("decrypt", sealedModel, "--key", key, "--out", sealedModel, "--force");
        CliResult encrypt = await Workspace.RunAsync("encrypt", sealedModel, "--key", key, "--model-id", "m", "--model-version", "1", "--out", Path.Combine(ws.Directory, ".", "model.mseal"), "--force");

        Assert.Equal(ExitCodes.Usage, decrypt.ExitCode);
        Asserts.ErrorWithHint(decrypt, "is the input file");
        Assert.Equal(ExitCodes.Usage, encrypt.ExitCode);
        Assert.Equal(before, File.ReadAllBytes(sealedModel));
    }

    [Fact]
    public async Task The_key_file_is_never_an_output_whatever_name_it_goes_by()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        byte[] keyBytes = File.ReadAllBytes(key);

        // The same name, a name with "." in it, and (on Linux) a hard link: one file, compared by identity.
        List<string> names = [key, Path.Combine(ws.Directory, ".", Path.GetFileName(key))];
        if (OperatingSystem.IsLinux())
        {
            string link = ws["hard-link.key"];
            Assert.Equal(0, await LinkAsync(key, link));
            names.Add(link);
        }

        foreach (string name in names)
        {
            CliResult encrypt = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", "m", "--model-version", "1", "--out", name, "--force");
            Assert.Equal(ExitCodes.Usage, encrypt.ExitCode);
            Asserts.ErrorWithHint(encrypt, "is the key file");

            CliResult decrypt = await Workspace.RunAsync("decrypt", sealedModel, "--key", key, "--out", name, "--force");
            Assert.Equal(ExitCodes.Usage, decrypt.ExitCode);
            Asserts.ErrorWithHint(decrypt, "is the key file");
        }

        Assert.Equal(keyBytes, File.ReadAllBytes(key));
    }

    private static async Task<int> LinkAsync(string target, string link)
    {
        using var ln = System.Diagnostics.Process.Start("ln", [target, link]);
        await ln.WaitForExitAsync(TestContext.Current.CancellationToken);
        return ln.ExitCode;
    }

    [Theory]
    [InlineData("-")]
    [InlineData("/dev/stdout")]
    public async Task Decrypt_never_writes_plaintext_to_standard_output(string output)
    {
        Assert.SkipWhen(OperatingSystem.IsWindows() && output.StartsWith('/'), "Unix paths.");
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);

        CliResult result = await Workspace.RunAsync("decrypt", sealedModel, "--key", key, "--out", output, "--force");

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Asserts.ErrorWithHint(result, "--out");
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public async Task An_output_directory_that_does_not_exist_is_an_io_error()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();

        CliResult result = await Workspace.RunAsync("encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", "m", "--model-version", "1", "--out", Path.Combine(ws.Directory, "missing", "o.mseal"));

        Assert.Equal(ExitCodes.IoError, result.ExitCode);
        Asserts.ErrorWithHint(result, "does not exist");
    }

    [Fact]
    public async Task A_directory_as_input_is_an_io_error()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();

        CliResult result = await Workspace.RunAsync("encrypt", ws.Directory, "--key", key, "--model-id", "m", "--model-version", "1", "--out", ws["o.mseal"]);

        Assert.Equal(ExitCodes.IoError, result.ExitCode);
        Asserts.ErrorWithHint(result, "is a directory");
    }

    [Fact]
    public async Task Verifying_a_plain_model_is_a_format_error()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();

        CliResult result = await Workspace.RunAsync("verify", RepoPaths.SampleModel, "--key", key);

        Assert.Equal(ExitCodes.FormatError, result.ExitCode);
        Asserts.ErrorWithHint(result, "is not a sealed model");
    }

    [Theory]
    [InlineData("keygen")]
    [InlineData("encrypt")]
    [InlineData("decrypt")]
    [InlineData("verify")]
    [InlineData("inspect")]
    public async Task A_cancelled_run_exits_130_and_writes_nothing(string verb)
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        string[] args = verb switch
        {
            "keygen" => ["keygen", "--out", ws["new.key"]],
            "encrypt" => ["encrypt", RepoPaths.SampleModel, "--key", key, "--model-id", "m", "--model-version", "1", "--out", ws["o.mseal"]],
            "decrypt" => ["decrypt", sealedModel, "--key", key, "--out", ws["o.onnx"]],
            "verify" => ["verify", sealedModel, "--key", key],
            _ => ["inspect", sealedModel],
        };

        CliResult result = await Workspace.RunAsync(args, interactive: false, cancellationToken: new CancellationToken(canceled: true));

        Assert.Equal(ExitCodes.Cancelled, result.ExitCode);
        Assert.StartsWith("error: cancelled", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
        Assert.Equal(["dev.key", "model.mseal"], ws.FileNames());
    }
}
