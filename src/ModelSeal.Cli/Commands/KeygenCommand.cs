using System.CommandLine;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal keygen --out FILE [--key-id ID] [--force] [--json]</c>: creates a local key file.</summary>
internal sealed class KeygenCommand : VerbCommand
{
    private const string Summary = """
        Create a new random data key in a key file (owner-only). Prints the key id, never the key.

        Examples:
          modelseal keygen --out dev.key
          modelseal keygen --out prod.key --key-id prod-2025 --json
        """;

    public KeygenCommand(CliContext context)
        : base("keygen", Summary, context)
    {
        Add(OutOption);
        Add(KeyIdOption);
        Add(ForceOption);
        Add(JsonOption);
    }

    public Option<string> OutOption { get; } = VerbOptions.Out("The key file to create.");

    public Option<string> KeyIdOption { get; } = VerbOptions.Identifier(
        "--key-id", "key id", Identifier.MaxIdLength, "ID", "The key id recorded in models sealed with it [default: local-<16 random hex digits>].", required: false);

    public Option<bool> ForceOption { get; } = VerbOptions.Force();

    public Option<bool> JsonOption { get; } = VerbOptions.Json();

    protected override string? GetOutputPath(ParseResult result) => result.GetValue(OutOption);

    protected override Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        string output = result.GetRequiredValue(OutOption);
        bool force = result.GetValue(ForceOption);
        string keyId = result.GetValue(KeyIdOption) ?? Keys.NewKeyId();
        Files.CheckOutput(output, force);
        cancellationToken.ThrowIfCancellationRequested();
        using (ModelKey key = ModelKey.Generate(keyId))
        {
            KeyFile.Write(output, key, overwrite: force);
        }

        WriteResult(result.GetValue(JsonOption), new KeygenResult(output, keyId), $"created key {keyId} in {output} (owner-only). Keep it secret: anyone holding it can open models sealed with it.");
        return Task.FromResult(ExitCodes.Success);
    }
}
