using System.CommandLine;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// The options that say where a server's state lives, shared by <c>serve</c> and <c>master-key migrate</c>: the data
/// directory, the database and the PKCS#11 token.
/// </summary>
internal sealed class ServerStateOptions
{
    public Option<string> Data { get; } = new("--data")
    {
        HelpName = "DIR",
        Description = "The data directory, created owner-only on first start.",
        DefaultValueFactory = _ => "modelseal-data",
    };

    public Option<string> Database { get; } = new Option<string>("--database")
    {
        HelpName = "PROVIDER",
        Description = "Where models, licences and the audit log live: 'sqlite' (modelseal.db in the data directory, one instance) or 'postgres' (shared by several instances; docs/deploy.md).",
        DefaultValueFactory = _ => DatabaseOptions.Sqlite,
    }.AcceptOnlyFromAmong(DatabaseOptions.Sqlite, DatabaseOptions.Postgres);

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

    public DatabaseOptions DatabaseOptionsOf(ParseResult result) => new()
    {
        Provider = result.GetRequiredValue(Database),
        ConnectionStringEnvironmentVariable = result.GetValue(ConnectionStringEnv),
    };

    public MasterKeyOptions MasterKeyOptionsOf(ParseResult result, string provider) => new()
    {
        Provider = provider,
        Pkcs11Module = result.GetValue(Pkcs11Module),
        TokenLabel = result.GetValue(TokenLabel),
        KeyLabel = result.GetValue(KeyLabel) ?? new MasterKeyOptions().KeyLabel,
        PinFile = result.GetValue(PinFile),
        PinEnvironmentVariable = result.GetValue(PinEnv),
    };
}
