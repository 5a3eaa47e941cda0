using ModelSeal.Protocol;

namespace ModelSeal.Cli.Tests;

/// <summary>Error messages and hints that say what happened and name the right command (issue 16).</summary>
public sealed class MessageTests
{
    [Fact]
    public async Task A_verb_without_force_does_not_suggest_force_for_an_existing_output()
    {
        using var ws = new Workspace();
        File.WriteAllText(ws["taken.credential"], "x");

        // licence add checks its --out before it connects: no server needed.
        CliResult licence = await Workspace.RunAsync("licence", "add", "--subject", "s", "--models", "m", "--out", ws["taken.credential"], "--server", "http://127.0.0.1:1");
        CliResult keygen = await Workspace.RunAsync("keygen", "--out", ws["taken.credential"]);

        Assert.Equal(ExitCodes.IoError, licence.ExitCode);
        Asserts.ErrorWithHint(licence, "already exists");
        Assert.DoesNotContain("--force", licence.Stderr, StringComparison.Ordinal);
        Assert.Contains("hint: pass --force", keygen.Stderr, StringComparison.Ordinal); // keygen has one
    }

    [Theory]
    [InlineData("--expires")]
    [InlineData("--not-before")]
    public async Task A_bad_time_says_which_formats_are_expected_and_names_no_dotnet_type(string option)
    {
        CliResult result = await Workspace.RunAsync("licence", "add", "--subject", "s", "--models", "m", option, "31/12/2026", "--out", "x.credential");

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains($"error: {option} '31/12/2026' is not a time: give RFC 3339", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("yyyy-mm-dd", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("licence", "add", "--subject", "s", "--models", "m", "--max-devices", "many", "--out", "x")]
    [InlineData("audit", "--limit", "lots")]
    [InlineData("bench", "--threads", "all")]
    [InlineData("audit", "verify", "--expect-records", "many", "--expect-hash", "h")]
    [InlineData("audit", "--after", "last")]
    [InlineData("serve", "--releases-per-minute", "lots")]
    public async Task A_bad_number_says_a_whole_number_is_expected(params string[] args)
    {
        CliResult result = await Workspace.RunAsync(args);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("is not a whole number.", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2026-12-31", "2026-12-31T00:00:00Z")]
    [InlineData("2026-12-31T23:59:59Z", "2026-12-31T23:59:59Z")]
    [InlineData("2026-12-31T23:59:59+01:00", "2026-12-31T22:59:59Z")]
    public void Times_are_rfc_3339_or_a_date_at_midnight_utc(string text, string expected)
    {
        Assert.True(Times.TryParse(text, out DateTimeOffset time));
        Assert.Equal(expected, Rfc3339.Format(time));
    }

    [Theory]
    [InlineData("2026-12-31T23:59:59")] // no offset: local time would be a guess
    [InlineData("31/12/2026")]
    [InlineData("tomorrow")]
    public void Times_without_an_offset_or_in_other_formats_are_refused(string text) =>
        Assert.False(Times.TryParse(text, out _));

    [Theory]
    [InlineData("modelseal licence add --help", "licence", "add", "--bogus")]
    [InlineData("modelseal licence add --help", "license", "add", "--bogus")]
    [InlineData("modelseal audit verify --help", "audit", "verify", "--expect-records", "3")]
    [InlineData("modelseal model list --help", "model", "list", "extra")]
    [InlineData("modelseal decrypt --help", "decrypt", "x.mseal")]
    public async Task Usage_hints_name_the_whole_command(string expected, params string[] args)
    {
        CliResult result = await Workspace.RunAsync(args);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains($"hint: run '{expected}' for usage.", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_option_that_is_not_a_key_file_is_called_that_before_any_permission_complaint()
    {
        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(sealedModel, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        // The sealed model passed as --key by mistake: readable by others, and not a key file at all.
        CliResult result = await Workspace.RunAsync("verify", sealedModel, "--key", sealedModel);

        Assert.Equal(ExitCodes.KeyError, result.ExitCode);
        Asserts.ErrorWithHint(result, "is not a ModelSeal key file");
        Assert.DoesNotContain("other users", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("chmod", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_full_disk_names_the_output_and_not_the_temporary_file()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("/dev/full is Linux's.");
            return;
        }

        // A real ENOSPC from the operating system, as .NET reports it for a write.
        IOException full = Assert.ThrowsAny<IOException>(() =>
        {
            using var stream = new FileStream("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
            stream.Write(new byte[16]);
        });

        (int exitCode, string message, string? hint) = ErrorReporter.Describe(full, "model.onnx", "/data/out/model.mseal");

        Assert.Equal(ExitCodes.IoError, exitCode);
        Assert.Equal("cannot write '/data/out/model.mseal': the disk is full. Nothing was written.", message);
        Assert.Contains("df -h /data/out", hint, StringComparison.Ordinal);
    }

    [Fact]
    public void A_read_only_directory_names_the_output_and_not_the_temporary_file()
    {
        // As ModelSeal's O_TMPFILE and linkat calls and .NET's FileStream report EROFS and EACCES.
        string output = "/data/out/model.mseal";
        Exception[] failures =
        [
            new IOException($"{System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(30)}: '/data/out'"),
            new IOException($"{System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(30)} : '/data/out/.model.mseal.1.h.r.modelseal-tmp'", 30),
            new UnauthorizedAccessException("Permission denied: '/data/out'"),
            new UnauthorizedAccessException("Access to the path '/data/out/.model.mseal.77.host.abc.modelseal-tmp' is denied."),
        ];

        foreach (Exception failure in failures)
        {
            (int exitCode, string message, string? hint) = ErrorReporter.Describe(failure, "model.onnx", output);
            Assert.Equal(ExitCodes.IoError, exitCode);
            Assert.StartsWith("cannot write '/data/out/model.mseal': the directory '/data/out' is ", message, StringComparison.Ordinal);
            Assert.Contains("read-only", message, StringComparison.Ordinal);
            Assert.DoesNotContain("modelseal-tmp", message, StringComparison.Ordinal);
            Assert.NotNull(hint);
        }

        // Permission denied for an input beside the output is not a failure to write the output.
        (_, string input, _) = ErrorReporter.Describe(new UnauthorizedAccessException("Access to the path '/data/out/model.onnx' is denied."), "/data/out/model.onnx", output);
        Assert.DoesNotContain("cannot write", input, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_read_only_output_directory_is_reported_as_such_by_the_verbs()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Needs Unix file permissions.");
            return;
        }

        using var ws = new Workspace();
        string key = await ws.KeygenAsync();
        string sealedModel = await ws.SealSampleAsync(key);
        string locked = ws["locked"];
        Directory.CreateDirectory(locked);
        File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            // In a child process that the directory's permissions bind, also when the tests run as root (CI).
            using CliProcess decrypting = CliProcess.Start(["decrypt", sealedModel, "--key", key, "--out", Path.Combine(locked, "model.onnx")], filePermissionsApply: true);
            CliResult decrypt = await decrypting.WaitAsync();
            using CliProcess generating = CliProcess.Start(["keygen", "--out", Path.Combine(locked, "new.key")], filePermissionsApply: true);
            CliResult keygen = await generating.WaitAsync();
            foreach (CliResult result in new[] { decrypt, keygen })
            {
                Assert.Equal(ExitCodes.IoError, result.ExitCode);
                Asserts.ErrorWithHint(result, $"cannot write '{locked}/");
                Assert.Contains("read-only", result.Stderr, StringComparison.Ordinal);
                Assert.DoesNotContain("modelseal-tmp", result.Stderr, StringComparison.Ordinal);
            }
        }
        finally
        {
            File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Theory]
    [InlineData(400, ProblemCodes.InvalidRequest)]
    [InlineData(401, ProblemCodes.Unauthorized)]
    [InlineData(403, ProblemCodes.Forbidden)]
    [InlineData(404, ProblemCodes.NotFound)]
    [InlineData(409, ProblemCodes.ModelExists)]
    [InlineData(409, ProblemCodes.VersionExists)]
    [InlineData(409, null)]
    [InlineData(500, null)]
    [InlineData(502, null)]
    public void Key_server_hints_never_point_at_an_answer_above(int status, string? code)
    {
        var refusal = new KeyServerException(KeyServerFailure.Refused, "the key server at http://127.0.0.1:5380/ refused: no details (" + status + ").", status, code, "no details");

        string hint = ErrorReporter.KeyServerHint(refusal);

        Assert.DoesNotContain("above", hint, StringComparison.Ordinal);
        Assert.DoesNotContain("it exists already", hint, StringComparison.Ordinal);
    }

    [Fact]
    public void A_409_hint_says_what_conflicts()
    {
        string model = ErrorReporter.KeyServerHint(new KeyServerException(KeyServerFailure.Refused, "m", 409, ProblemCodes.ModelExists, "d"));
        string version = ErrorReporter.KeyServerHint(new KeyServerException(KeyServerFailure.Refused, "m", 409, ProblemCodes.VersionExists, "d"));

        Assert.StartsWith("that model id is taken", model, StringComparison.Ordinal);
        Assert.DoesNotContain("licence", model, StringComparison.Ordinal);
        Assert.StartsWith("that version of the model exists already", version, StringComparison.Ordinal);
    }
}
