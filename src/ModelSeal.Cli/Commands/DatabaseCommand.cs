using System.CommandLine;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Cli.Commands;

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
            : base("migrate", """
                Copy the data directory's SQLite database (models, wrapped keys, licences, devices, the audit chain) into an empty PostgreSQL database, with the server stopped; then serve with --database postgres. modelseal.db is moved aside.

                Examples:
                  MODELSEAL_PG='Host=db;Database=modelseal;Username=modelseal' modelseal database migrate --data /var/lib/modelseal --connection-string-env MODELSEAL_PG
                """, context)
        {
            Add(_state.Data);
            _state.ConnectionStringEnv.Required = true;
            Add(_state.ConnectionStringEnv);
            Add(_json);
        }

        private readonly Option<bool> _json = VerbOptions.Json();

        protected override Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            var target = new DatabaseOptions { Provider = DatabaseOptions.Postgres, ConnectionStringEnvironmentVariable = result.GetValue(_state.ConnectionStringEnv) };
            DatabaseMigrationResult moved;
            try
            {
                moved = DatabaseMigration.Migrate(new ServerOptions { DataDirectory = _state.DataDirectory(result) }, target);
            }
            catch (ServerConfigurationException e)
            {
                throw new CliException(ExitCodes.Usage, e.Message, "stop the key server, then give its data directory and an empty PostgreSQL database (--connection-string-env; docs/deploy.md).", e);
            }

            if (result.GetValue(_json))
            {
                CliJsonContext.Write(Context, new DatabaseMigrateResult(moved.Models, moved.Versions, moved.Licences, moved.Devices, moved.Users, moved.UserDevices, moved.AuditRecords, moved.RetiredDatabaseFile));
                return Task.FromResult(ExitCodes.Success);
            }

            Context.Out.WriteLine($"copied {moved.Models} model(s), {moved.Versions} version(s), {moved.Licences} licence(s), {moved.Devices} licence device(s), {moved.Users} user(s), {moved.UserDevices} user device(s) and {moved.AuditRecords} audit record(s); the audit chain continues unchanged.");
            Context.Out.WriteLine($"modelseal.db is now {moved.RetiredDatabaseFile}. Start the server with --database postgres --connection-string-env {result.GetValue(_state.ConnectionStringEnv)}.");
            return Task.FromResult(ExitCodes.Success);
        }
    }
}
