using System.CommandLine;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary>Options and plumbing shared by the verbs that talk to a key server.</summary>
internal static class ServerOptionsFactory
{
    /// <summary>The server used when neither --server nor MODELSEAL_SERVER says otherwise.</summary>
    public const string DefaultServer = "http://127.0.0.1:5380";

    public const string CredentialFileVariable = "MODELSEAL_ADMIN_CREDENTIAL_FILE";
    public const string CredentialVariable = "MODELSEAL_ADMIN_CREDENTIAL";

    public static Option<Uri> Server(bool required = false) => new("--server")
    {
        Required = required,
        HelpName = "URL",
        Description = $"The key server [default: $MODELSEAL_SERVER or {DefaultServer}].",
        CustomParser = result =>
        {
            string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
            if (Uri.TryCreate(text, UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https")
            {
                return uri.AbsolutePath.EndsWith('/') ? uri : new Uri(uri + "/");
            }

            result.AddError($"--server '{text}' is not an http:// or https:// URL.");
            return null;
        },
    };

    public static Option<string> AdminCredentialFile() => new("--admin-credential-file")
    {
        HelpName = "FILE",
        Description = $"File holding the server's admin credential (the file the server wrote at first start, --admin-credential-out, or 'modelseal admin-credential rotate --out') [default: ${CredentialFileVariable}, or the credential itself in ${CredentialVariable}].",
    };

    public static Uri ServerUri(ParseResult result, Option<Uri> option) =>
        result.GetValue(option)
        ?? (Environment.GetEnvironmentVariable("MODELSEAL_SERVER") is { Length: > 0 } env && Uri.TryCreate(env.TrimEnd('/') + "/", UriKind.Absolute, out Uri? uri)
            ? uri
            : new Uri(DefaultServer + "/"));

    /// <summary>Connects and logs in as administrator with the credential from a file or the environment.</summary>
    public static async Task<KeyServerAdminClient> AdminClientAsync(ParseResult result, Option<Uri> server, Option<string> credentialFile, CancellationToken cancellationToken)
    {
        KeyServerAdminClient client = NewClient(ServerUri(result, server));
        try
        {
            string credential = ReadCredential(result.GetValue(credentialFile));
            await client.LoginAdminAsync(credential, cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>A client of the key server at <paramref name="server"/> (not logged in).</summary>
    /// <exception cref="CliException">The address is plain http:// to a host that is not loopback, without the opt-out.</exception>
    public static KeyServerAdminClient NewClient(Uri server) =>
        ServerAddress.Refusal(server, AllowInsecureHttp) is { } refusal
            ? throw new CliException(ExitCodes.Usage, refusal + ".", $"use https://, or set {AllowInsecureHttpVariable}=1 if TLS is terminated in front of that address.")
            : new(server, TimeSpan.FromSeconds(100), AllowInsecureHttp) { PinnedAnswerKeyId = Environment.GetEnvironmentVariable(AnswerKeyVariable) is { Length: > 0 } kid ? kid.Trim() : null };

    /// <summary>
    /// The pinned answer key (docs/protocol.md section 2.2): the <c>kid</c> whose signature <c>encrypt --server</c>
    /// requires on the new version's key; without it the key is learned from the server's JWKS over HTTPS or loopback.
    /// </summary>
    public const string AnswerKeyVariable = "MODELSEAL_ANSWER_KEY";

    /// <summary>The opt-out of <see cref="ServerAddress"/>'s rule (an environment variable, so no verb grows an option for it).</summary>
    public const string AllowInsecureHttpVariable = "MODELSEAL_ALLOW_INSECURE_HTTP";

    private static bool AllowInsecureHttp => Environment.GetEnvironmentVariable(AllowInsecureHttpVariable) is "1" or "true";

    private static string ReadCredential(string? file)
    {
        file ??= Environment.GetEnvironmentVariable(CredentialFileVariable);
        if (file is { Length: > 0 })
        {
            return SecretFiles.ReadCredential(file, "the admin credential file", "the server writes it once, to its --admin-credential-out FILE at first start (or 'modelseal admin-credential rotate --out FILE').");
        }

        return Environment.GetEnvironmentVariable(CredentialVariable) is { Length: > 0 } value
            ? value.Trim()
            : throw new CliException(
                ExitCodes.KeyError,
                "no admin credential: this command needs the key server's admin credential.",
                $"pass --admin-credential-file FILE (the file the server wrote at first start with --admin-credential-out), or set {CredentialFileVariable} (never put the credential itself on the command line).");
    }
}

/// <summary>A verb that talks to the key server as administrator: adds --server and --admin-credential-file.</summary>
internal abstract class AdminVerbCommand : VerbCommand
{
    protected AdminVerbCommand(string name, string description, CliContext context)
        : base(name, description, context)
    {
    }

    protected Option<Uri> ServerOption { get; } = ServerOptionsFactory.Server();

    protected Option<string> CredentialOption { get; } = ServerOptionsFactory.AdminCredentialFile();

    /// <summary>Adds the server options last, so each verb's own options come first in its help.</summary>
    protected void AddServerOptions()
    {
        Add(ServerOption);
        Add(CredentialOption);
    }

    protected Task<KeyServerAdminClient> ConnectAsync(ParseResult result, CancellationToken cancellationToken) =>
        ServerOptionsFactory.AdminClientAsync(result, ServerOption, CredentialOption, cancellationToken);
}
