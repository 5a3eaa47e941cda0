using System.CommandLine;
using System.Globalization;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal usage [--since T] [--until T] [--json]</c>: key releases and refusals per model per UTC day.</summary>
internal sealed class UsageCommand : AdminVerbCommand
{
    private readonly Option<DateTimeOffset?> _since = VerbOptions.Time("--since", "Count from this time (inclusive): " + Times.Format + ".");
    private readonly Option<DateTimeOffset?> _until = VerbOptions.Time("--until", "Count up to this time (exclusive): " + Times.Format + ".");
    private readonly Option<bool> _json = VerbOptions.Json();

    public UsageCommand(CliContext context)
        : base("usage", """
            Summarise the key server's audit log: per model and UTC day, the keys released and the refusals by reason
            (a table, or with --json one object).

            Examples:
              modelseal usage --admin-credential-file admin.credential
              modelseal usage --since 2026-11-01 --until 2026-12-01 --json
            """, context)
    {
        Add(_since);
        Add(_until);
        Add(_json);
        AddServerOptions();
        Validators.Add(r =>
        {
            if (r.GetValue(_since) is { } since && r.GetValue(_until) is { } until && until <= since)
            {
                r.AddError("--until must be later than --since.");
            }
        });
    }

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
        UsageResponse usage = await client.ReadUsageAsync(result.GetValue(_since), result.GetValue(_until), cancellationToken).ConfigureAwait(false);
        if (result.GetValue(_json))
        {
            CliJsonContext.Write(Context, new UsageResult(
                client.Server.ToString(),
                usage.Since,
                usage.Until,
                [.. usage.Items.Select(i => new UsageEntry(i.ModelId, i.Day, i.Releases, i.Refusals, i.RefusalsByReason))]));
            return ExitCodes.Success;
        }

        if (usage.Items.Count == 0)
        {
            Context.Out.WriteLine("no key releases or refusals in that time");
            return ExitCodes.Success;
        }

        Table.Write(
            Context.Out,
            ["MODEL", "DAY", "RELEASES", "REFUSALS", "BY REASON"],
            usage.Items.Select(i => new[]
            {
                i.ModelId,
                i.Day,
                i.Releases.ToString(CultureInfo.InvariantCulture),
                i.Refusals.ToString(CultureInfo.InvariantCulture),
                string.Join(", ", i.RefusalsByReason.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Key} {r.Value}"))),
            }));
        return ExitCodes.Success;
    }
}
