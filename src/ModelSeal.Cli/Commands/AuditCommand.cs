using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal audit [--json] [--after ID] [--limit N]</c> and <c>modelseal audit verify</c>.</summary>
internal sealed class AuditCommand : AdminVerbCommand
{
    private readonly Option<long?> _after = new("--after") { HelpName = "ID", Description = "Show records after this id." };
    private readonly Option<int> _limit = new("--limit") { HelpName = "N", Description = "At most this many records (1–500).", DefaultValueFactory = _ => 100 };
    private readonly Option<bool> _json = VerbOptions.Json();

    public AuditCommand(CliContext context)
        : base("audit", """
            Read the key server's append-only audit log (key releases, refusals, admin changes).

            Examples:
              modelseal audit --admin-credential-file admin.credential
              modelseal audit --after 100 --limit 50 --json
            """, context)
    {
        Add(_after);
        Add(_limit);
        Add(_json);
        AddServerOptions();
        Add(new VerifyCommand(context));
    }

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
        AuditPage page = await client.ReadAuditAsync(result.GetValue(_after), Math.Clamp(result.GetValue(_limit), 1, 500), cancellationToken).ConfigureAwait(false);
        if (result.GetValue(_json))
        {
            Context.Out.WriteLine(JsonSerializer.Serialize(page, ProtocolJson.Default.AuditPage));
            return ExitCodes.Success;
        }

        if (page.Items.Count == 0)
        {
            Context.Out.WriteLine(result.GetValue(_after) is null ? "the audit log is empty" : "no records after that id");
        }
        else
        {
            Table.Write(
                Context.Out,
                ["ID", "TIME", "EVENT", "OUTCOME", "SUBJECT", "LICENCE", "MODEL", "VERSION", "DEVICE", "CLIENT"],
                page.Items.Select(r => new[] { r.Id.ToString(CultureInfo.InvariantCulture), r.At, r.Event, r.Outcome, r.Subject, r.LicenceId, r.ModelId, r.Version, r.Device, r.Client }));
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
            : base("verify", $"""
                Verify the audit log's hash chain on the key server; exits {ExitCodes.AuditBroken} if a record was deleted, altered or reordered.

                Examples:
                  modelseal audit verify --admin-credential-file admin.credential
                  modelseal audit verify --expect-records 1200 --expect-hash HASH
                """, context)
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
                else if (r.GetResult(_expectRecords) is { Tokens: [.., var count] } && long.TryParse(count.Value, CultureInfo.InvariantCulture, out long records) && records < 0)
                {
                    r.AddError("--expect-records must not be negative.");
                }
            });
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            AuditVerifyResponse verification = await client.VerifyAuditAsync(result.GetValue(_expectRecords), result.GetValue(_expectHash), cancellationToken).ConfigureAwait(false);
            if (result.GetValue(_json))
            {
                Context.Out.WriteLine(JsonSerializer.Serialize(verification, ProtocolJson.Default.AuditVerifyResponse));
            }
            else if (verification.Verified)
            {
                Context.Out.WriteLine($"audit log intact: {Text.Plural(verification.Records, "record")}, head {verification.LastHash} (keep it: --expect-records {verification.Records} --expect-hash {verification.LastHash} detects removal of later records)");
                WriteCheckpoint(verification.Checkpoint);
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

        /// <summary>The latest signed checkpoint, one line (docs/protocol.md section 4.3); records after it need the head above.</summary>
        private void WriteCheckpoint(AuditCheckpointInfo? checkpoint)
        {
            Context.Out.WriteLine(checkpoint is null
                ? "no signed checkpoint yet"
                : Text.Safe($"latest signed checkpoint: {Text.Plural(checkpoint.Records, "record")} up to record {checkpoint.LastId}, at {checkpoint.At}, answer key {checkpoint.KeyId}: {(checkpoint.Verified ? "verified" : "NOT verified")}"));
        }
    }
}
