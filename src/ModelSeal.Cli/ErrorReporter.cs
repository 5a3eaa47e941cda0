using ModelSeal.Protocol;

namespace ModelSeal.Cli;

/// <summary>Maps exceptions to exit codes and user-facing <c>error:</c>/<c>hint:</c> lines.</summary>
internal static class ErrorReporter
{
    /// <summary>The hint given for every authentication failure.</summary>
    public const string AuthenticationHint =
        "check that --key is the key this model was sealed with; if it is, the file is damaged or was altered — get a fresh copy.";

    /// <summary>Prints the error and returns the exit code for it.</summary>
    /// <param name="context">Where to print.</param>
    /// <param name="exception">What went wrong.</param>
    /// <param name="input">The input file of the command, if any, to name in messages about it.</param>
    /// <param name="output">The output file of the command, if any, to name when writing it failed.</param>
    public static int Report(CliContext context, Exception exception, string? input, string? output = null)
    {
        (int exitCode, string message, string? hint) = Describe(exception, input, output);
        context.WriteError(message, hint);
        return exitCode;
    }

    /// <summary>The exit code, message and hint for an exception.</summary>
    public static (int ExitCode, string Message, string? Hint) Describe(Exception exception, string? input, string? output = null)
    {
        string subject = input is null ? "the input" : Quote(input);
        if (output is not null && OutputFailure.Describe(exception, output) is { } writing)
        {
            return writing;
        }

        return exception switch
        {
            CliException e => (e.ExitCode, e.Message, e.Hint),
            NotASealedModelException => (
                ExitCodes.FormatError,
                $"{subject} is not a sealed model: it does not start with the ModelSeal magic bytes.",
                $"seal a model first: modelseal encrypt {ShellQuote(input ?? "MODEL")} --key KEYFILE --model-id ID --model-version VERSION --out {ShellQuote((input ?? "MODEL") + SealedModel.FileExtension)}"),
            UnsupportedFormatVersionException e => (
                ExitCodes.FormatError,
                $"{subject}: {e.Message}",
                "upgrade modelseal to a version that reads this format."),
            SealedModelFormatException e => (
                ExitCodes.FormatError,
                $"{subject}: {e.Message}",
                "the file is damaged or was not written by modelseal — get a fresh copy."),
            SealedModelAuthenticationException => (
                ExitCodes.AuthenticationFailed,
                $"{subject} could not be authenticated: the key is wrong, or the file was altered or truncated. Nothing was written.",
                AuthenticationHint),
            KeyServerException e => (ExitCodes.ServerError, e.Message, KeyServerHint(e)),
            HpkeOpenException e => (ExitCodes.ServerError, "the key the server sent could not be opened: " + e.Message, "check that --server is the key server you expect."),
            ModelKeyException e => (ExitCodes.KeyError, e.Message, "create a key file with 'modelseal keygen --out FILE', or pass the right one with --key."),
            UnauthorizedAccessException e => (ExitCodes.IoError, e.Message, "check the permissions of the files and directories involved."),
            FileNotFoundException e => (ExitCodes.IoError, e.Message, "check the path."),
            DirectoryNotFoundException e => (ExitCodes.IoError, e.Message, "check the path; the directory must exist."),
            IOException e => (ExitCodes.IoError, e.Message, "check the paths, the free disk space and the permissions."),
            _ => (
                ExitCodes.Failure,
                $"unexpected {exception.GetType().FullName}: {exception.Message}",
                "this is a bug in modelseal; please report it with the command line you ran."),
        };
    }

    /// <summary>The hint for a refusal by the key server of an admin request (token issue phrases its own 401).</summary>
    internal static string KeyServerHint(KeyServerException e) => (e.Failure, e.Status, e.Code) switch
    {
        (KeyServerFailure.Unreachable, _, _) => "check --server (or MODELSEAL_SERVER) and that 'modelseal serve' is running.",
        (KeyServerFailure.InvalidAnswer, _, _) => "check that --server is a ModelSeal key server of this version.",
        (_, 401, _) => "check the admin credential: --admin-credential-file FILE (the file 'modelseal serve --admin-credential-out' or 'modelseal admin-credential rotate --out' wrote), MODELSEAL_ADMIN_CREDENTIAL_FILE or MODELSEAL_ADMIN_CREDENTIAL.",
        (_, 403, _) => "the server does not allow this for this credential or licence.",
        (_, 404, ProblemCodes.ModelNotFound or ProblemCodes.VersionNotFound) => "check the model id and version: 'modelseal model list' shows what exists.",
        (_, 404, ProblemCodes.DeviceNotFound) => "check the thumbprint: 'modelseal licence devices LICENCE-ID' shows the devices of a licence.",
        (_, 404, ProblemCodes.LicenceNotFound) => "check the licence id: 'modelseal licence list' shows what exists.",
        (_, 404, ProblemCodes.UserNotFound) => "check the user id: 'modelseal user list' shows the users and their ids (a user appears at its first key release under an entitlement rule).",
        (_, 404, _) => "check the ids: 'modelseal model list' and 'modelseal licence list' show what exists.",
        (_, 409, ProblemCodes.ModelExists) => "that model id is taken: 'modelseal model list' shows it; choose another id, or add a version to it with 'modelseal encrypt --server'.",
        (_, 409, ProblemCodes.VersionExists) => "that version of the model exists already: give a new --model-version, or leave it out so that the server numbers the versions ('modelseal model list' shows them).",
        (_, 409, ProblemCodes.VersionsNotDestroyed) => "destroy every version first: 'modelseal model destroy MODEL-ID VERSION --yes' ('modelseal model list' shows the versions and their states).",
        (_, 410, ProblemCodes.VersionDestroyed) => "a destroyed version stays destroyed: 'modelseal model list' shows the states.",
        (_, 409, _) => "the request conflicts with what the key server holds; 'modelseal model list' and 'modelseal licence list' show it.",
        (_, 429, _) => "slow down: the server rate-limits requests.",
        _ => "the key server's log has more.",
    };

    /// <summary>A path as it would be typed in a POSIX shell: unchanged when safe, else single-quoted.</summary>
    public static string ShellQuote(string path) =>
        path.Length > 0 && path.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+:,@%=".Contains(c, StringComparison.Ordinal))
            ? path
            : "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>Quotes a path for a message.</summary>
    public static string Quote(string path) => "'" + path + "'";
}
