namespace ModelSeal.Cli;

/// <summary>
/// The exit codes of <c>modelseal</c>. Scripts may rely on them: each names one class of outcome, and every error
/// also prints <c>error: …</c> and (where there is something to do about it) <c>hint: …</c> on standard error.
/// </summary>
internal static class ExitCodes
{
    /// <summary>0: the command did what was asked.</summary>
    public const int Success = 0;

    /// <summary>1: an unexpected, internal error (a bug): printed as <c>error: unexpected …</c> with the exception type.</summary>
    public const int Failure = 1;

    /// <summary>
    /// 2: the command line is wrong: unknown verb or option, a required option or argument missing, or an invalid
    /// value (a model id, model version or key id that is not an identifier; <c>--out</c> naming the input itself or
    /// standard output).
    /// </summary>
    public const int Usage = 2;

    /// <summary>
    /// 3: the input is not a well-formed sealed model: not a sealed model at all, an unsupported format version, or a
    /// malformed header. Found without using the key.
    /// </summary>
    public const int FormatError = 3;

    /// <summary>
    /// 4: the sealed model failed authentication: the key has the right id but is not the key it was sealed with, or
    /// the file was altered, truncated or extended. Nothing was written.
    /// </summary>
    public const int AuthenticationFailed = 4;

    /// <summary>
    /// 5: the key is unusable: the key file is missing, malformed or readable by other users, or it holds a key with
    /// another id than the one the model was sealed with.
    /// </summary>
    public const int KeyError = 5;

    /// <summary>
    /// 6: a file-system problem: the input does not exist or is not a regular file, the output exists and
    /// <c>--force</c> was not given, the output directory does not exist, or another I/O or permission error.
    /// </summary>
    public const int IoError = 6;

    /// <summary>7: the key server refused the request (its problem type is printed) or could not be reached.</summary>
    public const int ServerError = 7;

    /// <summary>
    /// 8: the key server's audit log failed verification (<c>modelseal audit verify</c>): a record does not chain to
    /// the one before it (deleted, altered or reordered records), or the head given with <c>--expect-records</c> and
    /// <c>--expect-hash</c> is gone (records removed from the end).
    /// </summary>
    public const int AuditBroken = 8;

    /// <summary>
    /// 9: a program the command needs is missing, too old or could not be set up: <c>demo --sign-in</c> needs Node.js
    /// 20 or later and npm, and installs the OpenID Connect provider's packages with <c>npm ci</c> (from the npm
    /// registry) on its first run.
    /// </summary>
    public const int MissingPrerequisite = 9;

    /// <summary>
    /// 130 (128 + SIGINT): interrupted by SIGINT (Ctrl+C), SIGTERM or SIGHUP, or cancelled. Nothing was written: no
    /// output, no partial output, no temporary file; an existing output is untouched.
    /// </summary>
    public const int Cancelled = 130;
}
