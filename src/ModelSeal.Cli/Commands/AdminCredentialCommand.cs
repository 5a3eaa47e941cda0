using System.CommandLine;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal admin-credential rotate</c>: makes a new admin credential, offline.</summary>
internal sealed class AdminCredentialCommand : Command
{
    public AdminCredentialCommand(CliContext context)
        : base("admin-credential", "Manage the key server's admin credential offline (only its hash is in the database).")
    {
        Add(new RotateCommand(context));
    }

    /// <summary><c>modelseal admin-credential rotate --out FILE [--data DIR] [--database … --connection-string-env VAR]</c>.</summary>
    private sealed class RotateCommand : VerbCommand
    {
        private readonly ServerStateOptions _state = new();

        public RotateCommand(CliContext context)
            : base("rotate", """
                Write a new admin credential to --out FILE (a new owner-only file outside the data directory), store its hash and refuse every admin token issued before. Takes the data directory's lock: with SQLite, stop the server first; instances sharing a PostgreSQL database refuse the old tokens at their next request.

                Examples:
                  modelseal admin-credential rotate --data /var/lib/modelseal --out ~/admin-2.credential
                """, context)
        {
            Add(OutOption);
            Add(_state.Data);
            Add(_state.Database);
            Add(_state.ConnectionStringEnv);
            Add(JsonOption);
        }

        public Option<bool> JsonOption { get; } = VerbOptions.Json();

        public Option<string> OutOption { get; } = new("--out")
        {
            HelpName = "FILE",
            Description = "Where to write the new admin credential: a new file, outside the data directory (never overwritten).",
            Required = true,
        };

        protected override Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            var options = new ServerOptions { DataDirectory = _state.DataDirectory(result), Database = _state.DatabaseOptionsOf(result) };
            AdminCredentialRotationResult rotated;
            try
            {
                rotated = AdminCredentialRotation.Rotate(options, Path.GetFullPath(result.GetRequiredValue(OutOption)));
            }
            catch (ServerConfigurationException e)
            {
                throw new CliException(ExitCodes.Usage, e.Message, "stop the key server (SQLite), then give its data directory, its database (--database, --connection-string-env) and a new file outside the data directory (--out; docs/deploy.md \"Admin credential\").", e);
            }

            if (result.GetValue(JsonOption))
            {
                CliJsonContext.Write(Context, new AdminCredentialRotateResult(rotated.CredentialFile, rotated.Epoch));
                return Task.FromResult(ExitCodes.Success);
            }

            Context.Out.WriteLine($"wrote the new admin credential to {rotated.CredentialFile} (owner-only); admin epoch {rotated.Epoch}: every admin token issued before is refused.");
            Context.Out.WriteLine("move it to your secret store and pass it with --admin-credential-file.");
            return Task.FromResult(ExitCodes.Success);
        }
    }
}
