using System.CommandLine;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal serve [--config FILE] [--data DIR] [--urls URL] [--database sqlite|postgres --connection-string-env VAR]
/// [--master-key file|pkcs11 --pkcs11-module PATH --token-label L [--key-label L] (--pin-file FILE | --pin-env VAR)]
/// [--no-metrics] [--releases-per-minute N] [--requests-per-minute N] [--admin-credential-out FILE]</c>: runs the key server until Ctrl+C. Every
/// setting comes from <see cref="ServerConfiguration.Load"/>: defaults, then the file, then <c>MODELSEAL_</c>
/// environment variables, then the flags given on the command line.
/// </summary>
internal sealed class ServeCommand : VerbCommand
{
    private readonly ServerStateOptions _state = new();

    public ServeCommand(CliContext context)
        : base("serve", """
            Run the key server: by default one data directory (SQLite database, master key, token- and answer-signing keys; the admin credential's hash in the database), listening on 127.0.0.1; with --database postgres and --master-key pkcs11, one of several instances. Settings come from --config FILE, then MODELSEAL_ environment variables, then these flags (docs/deploy.md).

            Examples:
              modelseal serve --data /var/lib/modelseal --admin-credential-out ~/admin.credential
              modelseal serve --config /etc/modelseal/server.json
            """, context)
    {
        Add(ConfigOption);
        _state.AddTo(this, MasterKeyOption);
        Add(UrlsOption);
        Add(NoMetricsOption);
        Add(ReleasesPerMinuteOption);
        Add(RequestsPerMinuteOption);
        Add(AdminCredentialOutOption);
        Add(JsonOption);
    }

    public Option<bool> JsonOption { get; } = new("--json") { Description = "Once listening, print one JSON object (addresses, data directory, the answer key's kid, where the admin credential was written) on standard output; other messages go to standard error." };

    public Option<string> AdminCredentialOutOption { get; } = new("--admin-credential-out")
    {
        HelpName = "FILE",
        Description = "First start only: write the new admin credential to FILE (a new owner-only file, outside the data directory); the database keeps only its hash. Required when the database holds no admin credential yet.",
    };

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
        Description = $"Where to listen [default: {ServerOptionsFactory.DefaultServer}].",
    };

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        ServerOptions options;
        WebApplication app;
        bool credentialExisted;
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

            if (!string.IsNullOrWhiteSpace(options.AdminCredentialOut))
            {
                options.AdminCredentialOut = Path.GetFullPath(options.AdminCredentialOut);
            }

            credentialExisted = options.AdminCredentialOut is { } outFile && File.Exists(outFile);

            // The console shows the server's own events; framework chatter only from warnings up. With --json the log
            // goes to standard error, so that standard output holds the one JSON object.
            bool json = result.GetValue(JsonOption);
            app = ServerHost.Build(options, logging =>
            {
                logging
                    .AddFilter("Microsoft", LogLevel.Warning)
                    .AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
                if (json)
                {
                    logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(console => console.LogToStandardErrorThreshold = LogLevel.Trace);
                }
            });
        }
        catch (ServerConfigurationException e)
        {
            throw new CliException(ExitCodes.Usage, e.Message, ServerStateOptions.Hint, e);
        }

        await using (app.ConfigureAwait(false))
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            ForgetSecretVariables(options);
            string? written = options.AdminCredentialOut is { } credentialFile && !credentialExisted && File.Exists(credentialFile) ? credentialFile : null;
            if (result.GetValue(JsonOption))
            {
                CliJsonContext.Write(Context, new ServeResult([.. app.Urls], options.DataDirectory, ServerHost.AnswerKeyId(app), written));
                Context.Out.Flush();
            }
            else
            {
                Context.Out.WriteLine($"modelseal key server listening on {string.Join(", ", app.Urls)}; data in {options.DataDirectory}");
                Context.Out.WriteLine($"answer key {ServerHost.AnswerKeyId(app)}: clients pin it (AnswerKeyId, MODELSEAL_ANSWER_KEY, ModelSealAnswerKey).");
                Context.Out.WriteLine(written is not null
                    ? $"admin credential written to {written} (owner-only; only its hash is kept): move it to your secret store and pass it with --admin-credential-file. Ctrl+C stops."
                    : "admin credential: the one written at first start ('modelseal admin-credential rotate --out FILE' makes a new one). Ctrl+C stops.");
            }

            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }

            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }

        (result.GetValue(JsonOption) ? Context.Error : Context.Out).WriteLine("modelseal key server stopped.");
        return ExitCodes.Success;
    }

    /// <summary>
    /// Removes the variables that held the PKCS#11 PIN and the PostgreSQL connection string, now that the server has
    /// read them, so that processes started from this one do not inherit them. (The kernel's copy in
    /// /proc/PID/environ keeps the original environment: prefer --pin-file and PGPASSFILE; docs/deploy.md.)
    /// </summary>
    private static void ForgetSecretVariables(ServerOptions options)
    {
        foreach (string? name in new[] { options.MasterKey.PinEnvironmentVariable, options.Database.ConnectionStringEnvironmentVariable })
        {
            if (!string.IsNullOrWhiteSpace(name))
            {
                Environment.SetEnvironmentVariable(name, null);
            }
        }
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
        Given(AdminCredentialOutOption, nameof(ServerOptions.AdminCredentialOut));
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
