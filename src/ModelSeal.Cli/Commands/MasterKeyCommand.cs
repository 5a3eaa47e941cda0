using System.CommandLine;
using ModelSeal.Protocol;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal master-key rotate</c> (online, through the admin API) and <c>modelseal master-key migrate</c> (offline:
/// moves the data keys from <c>master.keys</c> into an HSM token).
/// </summary>
internal sealed class MasterKeyCommand : Command
{
    public MasterKeyCommand(CliContext context)
        : base("master-key", "Manage the key server's master keys: rotate online, migrate into an HSM offline.")
    {
        Add(new RotateCommand(context));
        Add(new MigrateCommand(context));
    }

    /// <summary><c>modelseal master-key rotate</c>: a new master key on the running server, every data key rewrapped with it.</summary>
    private sealed class RotateCommand : AdminVerbCommand
    {
        private readonly Option<bool> _json = VerbOptions.Json();

        public RotateCommand(CliContext context)
            : base("rotate", """
                Add a new master key on the running key server and rewrap every data key with it (online; the server
                keeps serving). Audited as master-key.rotated.

                Examples:
                  modelseal master-key rotate --admin-credential-file admin.credential
                  modelseal master-key rotate --server https://keys.example.com --json
                """, context)
        {
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            RotateResponse rotated = await client.RotateMasterKeyAsync(cancellationToken).ConfigureAwait(false);
            WriteResult(
                result.GetValue(_json),
                new MasterKeyRotateResult(client.Server.ToString(), rotated.MasterKeyVersion, rotated.Rewrapped),
                $"rotated the master key on {client.Server}: now v{rotated.MasterKeyVersion}, {Text.Plural(rotated.Rewrapped, "data key")} rewrapped");
            return ExitCodes.Success;
        }
    }

    /// <summary>
    /// <c>modelseal master-key migrate [--data DIR] [--database …] --pkcs11-module PATH --token-label L [--key-label L]
    /// (--pin-file FILE | --pin-env VAR)</c>.
    /// </summary>
    private sealed class MigrateCommand : VerbCommand
    {
        private readonly ServerStateOptions _state = new();

        public MigrateCommand(CliContext context)
            : base("migrate", """
                Move every data key from master.keys into a PKCS#11 token (HSM), in one transaction, with the server stopped; then serve with --master-key pkcs11 and the same token options. master.keys is moved aside for the backups made before.

                Examples:
                  modelseal master-key migrate --data /var/lib/modelseal --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --token-label modelseal --pin-file pin.txt
                """, context)
        {
            _state.AddTo(this);
            Add(_json);
        }

        private readonly Option<bool> _json = VerbOptions.Json();

        protected override Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            var options = new ServerOptions { DataDirectory = _state.DataDirectory(result), Database = _state.DatabaseOptionsOf(result) };
            MasterKeyMigrationResult migrated;
            try
            {
                migrated = MasterKeyMigration.Migrate(options, _state.MasterKeyOptionsOf(result, MasterKeyOptions.Pkcs11));
            }
            catch (ServerConfigurationException e)
            {
                throw new CliException(ExitCodes.Usage, e.Message, "stop the key server, then give the data directory, the database and the target token (--pkcs11-module, --token-label, --pin-file/--pin-env; docs/deploy.md).", e);
            }

            if (result.GetValue(_json))
            {
                CliJsonContext.Write(Context, new MasterKeyMigrateResult(migrated.Rewrapped, migrated.MasterKeyVersion, migrated.RetiredMasterKeysFile));
                return Task.FromResult(ExitCodes.Success);
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
