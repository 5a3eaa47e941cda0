using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging;
using ModelSeal.Cli.Server;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;

namespace ModelSeal.Cli.Commands;

/// <summary>Options and plumbing shared by the verbs that talk to a key server.</summary>
internal static class ServerOptionsFactory
{
    public const string CredentialFileVariable = "MODELSEAL_ADMIN_CREDENTIAL_FILE";
    public const string CredentialVariable = "MODELSEAL_ADMIN_CREDENTIAL";

    public static Option<Uri> Server(bool required = false) => new("--server")
    {
        Required = required,
        HelpName = "URL",
        Description = $"The key server [default: $MODELSEAL_SERVER or {KeyServerClient.DefaultServer}].",
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
        Description = $"File holding the server's admin credential (the server writes <data>/admin.credential) [default: ${CredentialFileVariable}, or the credential itself in ${CredentialVariable}].",
    };

    public static Uri ServerUri(ParseResult result, Option<Uri> option) =>
        result.GetValue(option)
        ?? (Environment.GetEnvironmentVariable("MODELSEAL_SERVER") is { Length: > 0 } env && Uri.TryCreate(env.TrimEnd('/') + "/", UriKind.Absolute, out Uri? uri)
            ? uri
            : new Uri(KeyServerClient.DefaultServer + "/"));

    /// <summary>Connects and logs in as administrator with the credential from a file or the environment.</summary>
    public static async Task<KeyServerClient> AdminClientAsync(ParseResult result, Option<Uri> server, Option<string> credentialFile, CancellationToken cancellationToken)
    {
        string credential = ReadCredential(result.GetValue(credentialFile));
        var client = new KeyServerClient(ServerUri(result, server));
        try
        {
            await client.LoginAdminAsync(credential, cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    private static string ReadCredential(string? file)
    {
        file ??= Environment.GetEnvironmentVariable(CredentialFileVariable);
        if (file is { Length: > 0 })
        {
            try
            {
                return File.ReadAllText(file).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliException(ExitCodes.KeyError, $"cannot read the admin credential file {ErrorReporter.Quote(file)}: {e.Message}", "the server writes it to admin.credential in its data directory.", e);
            }
        }

        return Environment.GetEnvironmentVariable(CredentialVariable) is { Length: > 0 } value
            ? value.Trim()
            : throw new CliException(
                ExitCodes.KeyError,
                "no admin credential: this command needs the key server's admin credential.",
                $"pass --admin-credential-file <data>/admin.credential, or set {CredentialFileVariable} (never put the credential itself on the command line).");
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

    protected Task<KeyServerClient> ConnectAsync(ParseResult result, CancellationToken cancellationToken) =>
        ServerOptionsFactory.AdminClientAsync(result, ServerOption, CredentialOption, cancellationToken);
}

/// <summary>
/// The options that say where a server's state lives, shared by <c>serve</c> and <c>master-key migrate</c>: the data
/// directory, the database and the PKCS#11 token.
/// </summary>
internal sealed class ServerStateOptions
{
    public Option<string> Data { get; } = new("--data")
    {
        HelpName = "DIR",
        Description = "The data directory, created owner-only on first start [default: ./modelseal-data].",
        DefaultValueFactory = _ => "modelseal-data",
    };

    public Option<string> Database { get; } = new Option<string>("--database")
    {
        HelpName = "PROVIDER",
        Description = "Where models, licences and the audit log live: 'sqlite' (modelseal.db in the data directory, one instance) or 'postgres' (shared by several instances; docs/deploy.md) [default: sqlite].",
        DefaultValueFactory = _ => ModelSeal.Server.Configuration.DatabaseOptions.Sqlite,
    }.AcceptOnlyFromAmong(ModelSeal.Server.Configuration.DatabaseOptions.Sqlite, ModelSeal.Server.Configuration.DatabaseOptions.Postgres);

    public Option<string> ConnectionStringEnv { get; } = new("--connection-string-env") { HelpName = "VAR", Description = "PostgreSQL: the name of an environment variable holding the Npgsql connection string (never the string itself: it holds a password)." };

    public Option<string> Pkcs11Module { get; } = new("--pkcs11-module") { HelpName = "PATH", Description = "PKCS#11: the module (shared library) of the HSM." };

    public Option<string> TokenLabel { get; } = new("--token-label") { HelpName = "LABEL", Description = "PKCS#11: the label of the token holding the master keys." };

    public Option<string> KeyLabel { get; } = new("--key-label") { HelpName = "LABEL", Description = "PKCS#11: the label prefix of the master-key objects (<label>-v1, -v2, …) [default: modelseal-master]." };

    public Option<string> PinFile { get; } = new("--pin-file") { HelpName = "FILE", Description = "PKCS#11: an owner-only file holding the token's user PIN." };

    public Option<string> PinEnv { get; } = new("--pin-env") { HelpName = "VAR", Description = "PKCS#11: the name of an environment variable holding the user PIN (never the PIN itself)." };

    /// <summary>The hint for a refused configuration.</summary>
    public const string Hint = "fix the configuration and start again: the --config file, MODELSEAL_ environment variables (MODELSEAL_Database__Provider=postgres) or the flags, which override both (--database and --connection-string-env set the Database options; --master-key, --pkcs11-module, --token-label, --key-label and --pin-file/--pin-env the MasterKey options); docs/deploy.md \"Configuration reference\" lists every key.";

    /// <summary>Adds the options; <paramref name="masterKey"/> (serve's --master-key) goes before the PKCS#11 ones.</summary>
    public void AddTo(Command command, Option<string>? masterKey = null)
    {
        command.Add(Data);
        if (masterKey is not null)
        {
            command.Add(masterKey);
        }

        foreach (Option option in new Option[] { Pkcs11Module, TokenLabel, KeyLabel, PinFile, PinEnv, Database, ConnectionStringEnv })
        {
            command.Add(option);
        }
    }

    public string DataDirectory(ParseResult result) => Path.GetFullPath(result.GetRequiredValue(Data));

    public ModelSeal.Server.Configuration.DatabaseOptions DatabaseOptions(ParseResult result) => new()
    {
        Provider = result.GetRequiredValue(Database),
        ConnectionStringEnvironmentVariable = result.GetValue(ConnectionStringEnv),
    };

    public ModelSeal.Server.Configuration.MasterKeyOptions MasterKeyOptions(ParseResult result, string provider) => new()
    {
        Provider = provider,
        Pkcs11Module = result.GetValue(Pkcs11Module),
        TokenLabel = result.GetValue(TokenLabel),
        KeyLabel = result.GetValue(KeyLabel) ?? new ModelSeal.Server.Configuration.MasterKeyOptions().KeyLabel,
        PinFile = result.GetValue(PinFile),
        PinEnvironmentVariable = result.GetValue(PinEnv),
    };
}

/// <summary>
/// <c>modelseal serve [--config FILE] [--data DIR] [--urls URL] [--database sqlite|postgres --connection-string-env VAR]
/// [--master-key file|pkcs11 --pkcs11-module PATH --token-label L [--key-label L] (--pin-file FILE | --pin-env VAR)]
/// [--no-metrics] [--releases-per-minute N] [--requests-per-minute N]</c>: runs the key server until Ctrl+C. Every
/// setting comes from <see cref="ServerConfiguration.Load"/>: defaults, then the file, then <c>MODELSEAL_</c>
/// environment variables, then the flags given on the command line.
/// </summary>
internal sealed class ServeCommand : VerbCommand
{
    private readonly ServerStateOptions _state = new();

    public ServeCommand(CliContext context)
        : base("serve", "Run the key server: by default one data directory (SQLite database, master key, admin credential), listening on 127.0.0.1; with --database postgres and --master-key pkcs11, one of several instances. Settings come from --config FILE, then MODELSEAL_ environment variables, then these flags (docs/deploy.md).", context)
    {
        Add(ConfigOption);
        _state.AddTo(this, MasterKeyOption);
        Add(UrlsOption);
        Add(NoMetricsOption);
        Add(ReleasesPerMinuteOption);
        Add(RequestsPerMinuteOption);
    }

    public Option<string> ConfigOption { get; } = new("--config")
    {
        HelpName = "FILE",
        Description = "A JSON configuration file with any ServerOptions keys (docs/deploy.md \"Configuration reference\"); MODELSEAL_ environment variables and the flags given here override it.",
    };

    public Option<int> ReleasesPerMinuteOption { get; } = new("--releases-per-minute")
    {
        HelpName = "N",
        Description = "Key releases allowed per token subject per minute, per instance [default: 600].",
    };

    public Option<int> RequestsPerMinuteOption { get; } = new("--requests-per-minute")
    {
        HelpName = "N",
        Description = "Requests allowed per client address per minute, per instance; behind a proxy every client has the proxy's address [default: 6000].",
    };

    public Option<bool> NoMetricsOption { get; } = new("--no-metrics") { Description = "Serve no Prometheus endpoint /metrics and collect no metrics (Metrics:Enabled=false)." };

    public Option<string> MasterKeyOption { get; } = new Option<string>("--master-key")
    {
        HelpName = "PROVIDER",
        Description = "Where the master keys live: 'file' (master.keys in the data directory) or 'pkcs11' (an HSM token; docs/deploy.md) [default: file].",
    }.AcceptOnlyFromAmong(MasterKeyOptions.File, MasterKeyOptions.Pkcs11);

    public Option<string> UrlsOption { get; } = new("--urls")
    {
        HelpName = "URL",
        Description = $"Where to listen [default: {KeyServerClient.DefaultServer}].",
    };

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        ServerOptions options;
        Microsoft.AspNetCore.Builder.WebApplication app;
        try
        {
            options = ServerConfiguration.Load(
                result.GetValue(ConfigOption),
                Environment.GetEnvironmentVariables(),
                defaults: new Dictionary<string, string?> { [nameof(ServerOptions.DataDirectory)] = result.GetRequiredValue(_state.Data) },
                overrides: Overrides(result));
            if (!string.IsNullOrWhiteSpace(options.DataDirectory))
            {
                options.DataDirectory = Path.GetFullPath(options.DataDirectory);
            }

            // The console shows the server's own events; framework chatter only from warnings up.
            app = ModelSeal.Server.ServerHost.Build(options, logging => logging
                .AddFilter("Microsoft", Microsoft.Extensions.Logging.LogLevel.Warning)
                .AddFilter("Microsoft.Hosting.Lifetime", Microsoft.Extensions.Logging.LogLevel.Information));
        }
        catch (ServerConfigurationException e)
        {
            throw new CliException(ExitCodes.Usage, e.Message, ServerStateOptions.Hint, e);
        }

        await using (app.ConfigureAwait(false))
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            Context.Out.WriteLine($"modelseal key server listening on {string.Join(", ", app.Urls)}; data in {options.DataDirectory}");
            Context.Out.WriteLine($"admin credential: {Path.Combine(options.DataDirectory, "admin.credential")} (pass it with --admin-credential-file). Ctrl+C stops.");
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }

            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }

        Context.Out.WriteLine("modelseal key server stopped.");
        return ExitCodes.Success;
    }

    /// <summary>The configuration keys of the flags given on the command line (not their defaults): they win.</summary>
    private Dictionary<string, string?> Overrides(ParseResult result)
    {
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        void Given<T>(Option<T> option, string key, Func<T, string?>? format = null)
        {
            if (result.GetResult(option) is { Implicit: false } given)
            {
                T value = given.GetValueOrDefault<T>();
                overrides[key] = format is null ? Convert.ToString(value, CultureInfo.InvariantCulture) : format(value);
            }
        }

        Given(_state.Data, nameof(ServerOptions.DataDirectory));
        Given(UrlsOption, nameof(ServerOptions.Urls));
        Given(ReleasesPerMinuteOption, nameof(ServerOptions.ReleasesPerMinutePerSubject));
        Given(RequestsPerMinuteOption, nameof(ServerOptions.RequestsPerMinutePerClient));
        Given(NoMetricsOption, "Metrics:Enabled", noMetrics => noMetrics ? "false" : "true");
        Given(MasterKeyOption, "MasterKey:Provider");
        Given(_state.Pkcs11Module, "MasterKey:Pkcs11Module");
        Given(_state.TokenLabel, "MasterKey:TokenLabel");
        Given(_state.KeyLabel, "MasterKey:KeyLabel");
        Given(_state.PinFile, "MasterKey:PinFile");
        Given(_state.PinEnv, "MasterKey:PinEnvironmentVariable");
        Given(_state.Database, "Database:Provider");
        Given(_state.ConnectionStringEnv, "Database:ConnectionStringEnvironmentVariable");
        return overrides;
    }
}

/// <summary><c>modelseal database migrate</c>: moves the embedded SQLite database to PostgreSQL.</summary>
internal sealed class DatabaseCommand : Command
{
    public DatabaseCommand(CliContext context)
        : base("database", "Manage the key server's database offline.")
    {
        Add(new MigrateCommand(context));
    }

    /// <summary><c>modelseal database migrate [--data DIR] --connection-string-env VAR</c>.</summary>
    private sealed class MigrateCommand : VerbCommand
    {
        private readonly ServerStateOptions _state = new();

        public MigrateCommand(CliContext context)
            : base("migrate", "Copy the data directory's SQLite database (models, wrapped keys, licences, devices, the audit chain) into an empty PostgreSQL database, with the server stopped; then serve with --database postgres. modelseal.db is moved aside.", context)
        {
            Add(_state.Data);
            _state.ConnectionStringEnv.Required = true;
            Add(_state.ConnectionStringEnv);
        }

        protected override Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            var target = new ModelSeal.Server.Configuration.DatabaseOptions { Provider = ModelSeal.Server.Configuration.DatabaseOptions.Postgres, ConnectionStringEnvironmentVariable = result.GetValue(_state.ConnectionStringEnv) };
            ModelSeal.Server.DatabaseMigrationResult moved;
            try
            {
                moved = ModelSeal.Server.DatabaseMigration.Migrate(new ModelSeal.Server.Configuration.ServerOptions { DataDirectory = _state.DataDirectory(result) }, target);
            }
            catch (ModelSeal.Server.Configuration.ServerConfigurationException e)
            {
                throw new CliException(ExitCodes.Usage, e.Message, "stop the key server, then give its data directory and an empty PostgreSQL database (--connection-string-env; docs/deploy.md).", e);
            }

            Context.Out.WriteLine($"copied {moved.Models} model(s), {moved.Versions} version(s), {moved.Licences} licence(s), {moved.Devices} device(s) and {moved.AuditRecords} audit record(s); the audit chain continues unchanged.");
            Context.Out.WriteLine($"modelseal.db is now {moved.RetiredDatabaseFile}. Start the server with --database postgres --connection-string-env {result.GetValue(_state.ConnectionStringEnv)}.");
            return Task.FromResult(ExitCodes.Success);
        }
    }
}

/// <summary><c>modelseal master-key migrate</c>: moves the data keys from <c>master.keys</c> into an HSM token.</summary>
internal sealed class MasterKeyCommand : Command
{
    public MasterKeyCommand(CliContext context)
        : base("master-key", "Manage the key server's master keys offline (rotation is online: POST /v1/admin/master-key/rotate).")
    {
        Add(new MigrateCommand(context));
    }

    /// <summary>
    /// <c>modelseal master-key migrate [--data DIR] [--database …] --pkcs11-module PATH --token-label L [--key-label L]
    /// (--pin-file FILE | --pin-env VAR)</c>.
    /// </summary>
    private sealed class MigrateCommand : VerbCommand
    {
        private readonly ServerStateOptions _state = new();

        public MigrateCommand(CliContext context)
            : base("migrate", "Move every data key from master.keys into a PKCS#11 token (HSM), in one transaction, with the server stopped; then serve with --master-key pkcs11 and the same token options. master.keys is moved aside for the backups made before.", context)
        {
            _state.AddTo(this);
        }

        protected override Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            var options = new ModelSeal.Server.Configuration.ServerOptions { DataDirectory = _state.DataDirectory(result), Database = _state.DatabaseOptions(result) };
            ModelSeal.Server.MasterKeyMigrationResult migrated;
            try
            {
                migrated = ModelSeal.Server.MasterKeyMigration.Migrate(options, _state.MasterKeyOptions(result, ModelSeal.Server.Configuration.MasterKeyOptions.Pkcs11));
            }
            catch (ModelSeal.Server.Configuration.ServerConfigurationException e)
            {
                throw new CliException(ExitCodes.Usage, e.Message, "stop the key server, then give the data directory, the database and the target token (--pkcs11-module, --token-label, --pin-file/--pin-env; docs/deploy.md).", e);
            }

            Context.Out.WriteLine($"moved {migrated.Rewrapped} data key(s) into the PKCS#11 token (master key v{migrated.MasterKeyVersion}).");
            if (migrated.RetiredMasterKeysFile is { } retired)
            {
                Context.Out.WriteLine($"master.keys is now {retired}: keep it off this machine with the backups made before the migration, and destroy it when none of them is needed.");
            }

            Context.Out.WriteLine("start the server with --master-key pkcs11 and the same token options.");
            return Task.FromResult(ExitCodes.Success);
        }
    }
}

/// <summary><c>modelseal model add ID</c> and <c>modelseal model list</c>.</summary>
internal sealed class ModelCommand : Command
{
    public ModelCommand(CliContext context)
        : base("model", "Manage models on a key server.")
    {
        Add(new AddCommand(context));
        Add(new ListCommand(context));
    }

    private sealed class AddCommand : AdminVerbCommand
    {
        private readonly Argument<string> _id = new("ID") { Description = "The model id (letters, digits, '.', '_', '-')." };

        public AddCommand(CliContext context)
            : base("add", "Register a model id on the key server; 'modelseal encrypt --server' then adds versions.", context)
        {
            _id.Validators.Add(r =>
            {
                if (!Identifier.IsValid(r.GetValueOrDefault<string>() ?? string.Empty, Identifier.MaxIdLength))
                {
                    r.AddError("ID must be 1 to 128 ASCII characters, start with a letter or digit, and contain only letters, digits, '.', '_' and '-'.");
                }
            });
            Add(_id);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            ModelAnswer model = await client.AddModelAsync(result.GetRequiredValue(_id), cancellationToken).ConfigureAwait(false);
            Context.Out.WriteLine($"added model {model.ModelId} on {client.Server}");
            return ExitCodes.Success;
        }
    }

    private sealed class ListCommand : AdminVerbCommand
    {
        public ListCommand(CliContext context)
            : base("list", "List the models and their versions on the key server.", context)
        {
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            foreach (ModelAnswer model in (await client.ListModelsAsync(cancellationToken).ConfigureAwait(false)).Items)
            {
                Context.Out.WriteLine(model.ModelId);
                foreach (VersionAnswer version in model.Versions ?? [])
                {
                    Context.Out.WriteLine($"  {version.Version,-12} {version.State,-10} key {version.KeyId}");
                }
            }

            return ExitCodes.Success;
        }
    }
}

/// <summary><c>modelseal license add|revoke|list</c>.</summary>
internal sealed class LicenseCommand : Command
{
    public LicenseCommand(CliContext context)
        : base("license", "Manage licences on a key server.")
    {
        Add(new AddCommand(context));
        Add(new RevokeCommand(context));
        Add(new ListCommand(context));
    }

    private sealed class AddCommand : AdminVerbCommand
    {
        private readonly Option<string> _subject = new("--subject") { Required = true, HelpName = "SUBJECT", Description = "Who the licence is for: the 'sub' of its tokens." };
        private readonly Option<string> _models = new("--models") { Required = true, HelpName = "IDS", Description = "Comma-separated model ids the licence covers, or '*' for all." };
        private readonly Option<DateTimeOffset?> _notBefore = new("--not-before") { HelpName = "TIME", Description = "Start of validity (ISO 8601)." };
        private readonly Option<DateTimeOffset?> _expires = new("--expires") { HelpName = "TIME", Description = "End of validity (ISO 8601)." };
        private readonly Option<int> _maxDevices = new("--max-devices") { HelpName = "N", Description = "How many devices may obtain keys [default: 1].", DefaultValueFactory = _ => 1 };
        private readonly Option<string> _credentialOut = VerbOptions.Out("File to write the licence credential to (owner-only); it is shown nowhere else.");

        public AddCommand(CliContext context)
            : base("add", "Create a licence; its credential goes to --out (owner-only), never to the terminal.", context)
        {
            Add(_subject);
            Add(_models);
            Add(_notBefore);
            Add(_expires);
            Add(_maxDevices);
            Add(_credentialOut);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            string output = result.GetRequiredValue(_credentialOut);
            Files.CheckOutput(output, input: null, force: false);
            using KeyServerClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            string[] models = result.GetRequiredValue(_models).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            LicenceAnswer licence = await client.AddLicenceAsync(
                new AddLicenceRequest(result.GetRequiredValue(_subject), models, result.GetValue(_notBefore), result.GetValue(_expires), result.GetValue(_maxDevices)),
                cancellationToken).ConfigureAwait(false);
            await using (AtomicFile file = AtomicFile.Create(output, overwrite: false, ownerOnly: true))
            {
                await using (var writer = new StreamWriter(file.Stream, leaveOpen: true))
                {
                    await writer.WriteLineAsync(licence.Credential).ConfigureAwait(false);
                }

                await file.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            Context.Out.WriteLine($"created licence {licence.LicenceId} for {licence.Subject} ({string.Join(", ", licence.Models)}; up to {Text.Plural(licence.MaxDevices, "device")}); credential in {output} (owner-only)");
            return ExitCodes.Success;
        }
    }

    private sealed class RevokeCommand : AdminVerbCommand
    {
        private readonly Argument<string> _id = new("LICENCE-ID") { Description = "The licence to revoke." };

        public RevokeCommand(CliContext context)
            : base("revoke", "Revoke a licence: its devices get no more keys.", context)
        {
            Add(_id);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            LicenceAnswer licence = await client.RevokeLicenceAsync(result.GetRequiredValue(_id), cancellationToken).ConfigureAwait(false);
            Context.Out.WriteLine($"revoked licence {licence.LicenceId} ({licence.Subject})");
            return ExitCodes.Success;
        }
    }

    private sealed class ListCommand : AdminVerbCommand
    {
        public ListCommand(CliContext context)
            : base("list", "List licences.", context)
        {
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            foreach (LicenceAnswer l in (await client.ListLicencesAsync(cancellationToken).ConfigureAwait(false)).Items)
            {
                string state = l.RevokedAt is { } revoked ? "revoked " + Text.Timestamp(revoked) : l.ExpiresAt is { } expires ? "expires " + Text.Timestamp(expires) : "no expiry";
                Context.Out.WriteLine($"{l.LicenceId}  {l.Subject}  models {string.Join(",", l.Models)}  devices ≤ {l.MaxDevices}  {state}");
            }

            return ExitCodes.Success;
        }
    }
}

/// <summary><c>modelseal token issue --license ID --credential-file FILE</c> (a development convenience).</summary>
internal sealed class TokenCommand : Command
{
    public TokenCommand(CliContext context)
        : base("token", "Tokens for testing.")
    {
        Add(new IssueCommand(context));
    }

    private sealed class IssueCommand : VerbCommand
    {
        private readonly Option<Uri> _server = ServerOptionsFactory.Server();
        private readonly Option<string> _licence = new("--license") { Required = true, HelpName = "LICENCE-ID", Description = "The licence." };
        private readonly Option<string> _credentialFile = new("--credential-file") { Required = true, HelpName = "FILE", Description = "The licence credential file written by 'modelseal license add'." };

        public IssueCommand(CliContext context)
            : base("issue", "Exchange a licence credential for a short-lived device token and print it (for testing clients).", context)
        {
            Add(_licence);
            Add(_credentialFile);
            Add(_server);
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            string credential = (await File.ReadAllTextAsync(result.GetRequiredValue(_credentialFile), cancellationToken).ConfigureAwait(false)).Trim();
            using var client = new KeyServerClient(ServerOptionsFactory.ServerUri(result, _server));
            TokenAnswer token = await client.IssueLicenceTokenAsync(result.GetRequiredValue(_licence), credential, cancellationToken).ConfigureAwait(false);
            Context.Out.WriteLine(token.AccessToken);
            Context.WriteWarning($"this token grants key release for {token.ExpiresIn} s; treat it as a secret.");
            return ExitCodes.Success;
        }
    }
}

/// <summary><c>modelseal audit [--json] [--after ID] [--limit N]</c> and <c>modelseal audit verify</c>.</summary>
internal sealed class AuditCommand : AdminVerbCommand
{
    private readonly Option<long?> _after = new("--after") { HelpName = "ID", Description = "Show records after this id." };
    private readonly Option<int> _limit = new("--limit") { HelpName = "N", Description = "At most this many records (1–500) [default: 100].", DefaultValueFactory = _ => 100 };
    private readonly Option<bool> _json = VerbOptions.Json();

    public AuditCommand(CliContext context)
        : base("audit", "Read the key server's append-only audit log (key releases, refusals, admin changes).", context)
    {
        Add(_after);
        Add(_limit);
        Add(_json);
        AddServerOptions();
        Add(new VerifyCommand(context));
    }

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        using KeyServerClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
        AuditPage page = await client.ReadAuditAsync(result.GetValue(_after), Math.Clamp(result.GetValue(_limit), 1, 500), cancellationToken).ConfigureAwait(false);
        if (result.GetValue(_json))
        {
            Context.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(page, ServerJson.Default.AuditPage));
            return ExitCodes.Success;
        }

        foreach (AuditRecord r in page.Items)
        {
            Context.Out.WriteLine(string.Join("  ", new[]
            {
                r.Id.ToString(CultureInfo.InvariantCulture), Text.Timestamp(r.At), r.Event, r.Outcome, r.Subject, r.LicenceId,
                r.ModelId is null ? null : $"{r.ModelId} {r.Version}", r.Device is null ? null : "device " + r.Device, r.Client,
            }.Where(s => !string.IsNullOrEmpty(s))));
        }

        if (page.Next is { } next)
        {
            Context.Out.WriteLine($"(more: modelseal audit --after {next})");
        }

        return ExitCodes.Success;
    }

    /// <summary><c>modelseal audit verify [--expect-records N --expect-hash HASH] [--json]</c>.</summary>
    private sealed class VerifyCommand : AdminVerbCommand
    {
        private readonly Option<long?> _expectRecords = new("--expect-records") { HelpName = "N", Description = "With --expect-hash: the record count of an earlier verification; detects records removed from the end." };
        private readonly Option<string> _expectHash = new("--expect-hash") { HelpName = "HASH", Description = "With --expect-records: the head hash (base64url) of that earlier verification." };
        private readonly Option<bool> _json = VerbOptions.Json();

        public VerifyCommand(CliContext context)
            : base("verify", $"Verify the audit log's hash chain on the key server; exits {ExitCodes.AuditBroken} if a record was deleted, altered or reordered.", context)
        {
            Add(_expectRecords);
            Add(_expectHash);
            Add(_json);
            Validators.Add(r =>
            {
                if ((r.GetResult(_expectRecords) is null) != (r.GetResult(_expectHash) is null))
                {
                    r.AddError("--expect-records and --expect-hash go together (take both from an earlier 'modelseal audit verify').");
                }
                else if (r.GetValue(_expectRecords) is < 0)
                {
                    r.AddError("--expect-records must not be negative.");
                }
            });
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            AuditVerification verification = await client.VerifyAuditAsync(result.GetValue(_expectRecords), result.GetValue(_expectHash), cancellationToken).ConfigureAwait(false);
            if (result.GetValue(_json))
            {
                Context.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(verification, ServerJson.Default.AuditVerification));
            }
            else if (verification.Verified)
            {
                Context.Out.WriteLine($"audit log intact: {Text.Plural(verification.Records, "record")}, head {verification.LastHash} (keep it: --expect-records {verification.Records} --expect-hash {verification.LastHash} detects removal of later records)");
            }

            if (verification.Verified)
            {
                return ExitCodes.Success;
            }

            string where = verification.FirstBadId is { } id ? $" at record {id}" : string.Empty;
            throw new CliException(
                ExitCodes.AuditBroken,
                $"the audit log is broken{where}: {verification.Reason} ({Text.Plural(verification.Records, "record")} before it chain correctly, head {verification.LastHash}).",
                "the log was changed outside the key server; keep the data directory as it is for investigation and restore the database from a backup.");
        }
    }
}
