using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal audit [--after ID] [--limit N] [--licence ID] [--subject S] [--model ID] [--event E] [--since T] [--until T] [--json]</c>
/// and <c>modelseal audit verify</c>.
/// </summary>
internal sealed class AuditCommand : AdminVerbCommand
{
    private readonly Option<long?> _after = new("--after") { HelpName = "ID", Description = "Show records after this id." };
    private readonly Option<int> _limit = new("--limit") { HelpName = "N", Description = "At most this many records (1–500).", DefaultValueFactory = _ => 100 };
    private readonly Option<string> _licence = new("--licence", "--license") { HelpName = "LICENCE-ID", Description = "Only the records of this licence." };
    private readonly Option<string> _subject = new("--subject") { HelpName = "SUBJECT", Description = "Only the records of this subject: a licence's user (the 'sub' of its tokens) or an admin." };
    private readonly Option<string> _model = new("--model") { HelpName = "MODEL-ID", Description = "Only the records of this model." };
    private readonly Option<string> _event = new("--event") { HelpName = "EVENT", Description = "Only the records of this event (e.g. key.released, key.refused, licence.changed)." };
    private readonly Option<DateTimeOffset?> _since = VerbOptions.Time("--since", "Only records at or after this time: " + Times.Format + ".");
    private readonly Option<DateTimeOffset?> _until = VerbOptions.Time("--until", "Only records before this time: " + Times.Format + ".");
    private readonly Option<bool> _json = VerbOptions.Json();

    public AuditCommand(CliContext context)
        : base("audit", """
            Read the key server's append-only audit log (key releases, refusals, admin changes).

            Examples:
              modelseal audit --admin-credential-file admin.credential
              modelseal audit --after 100 --limit 50 --json
              modelseal audit --licence lic_0123456789abcdef --event key.refused --since 2026-11-01
            """, context)
    {
        Add(_after);
        Add(_limit);
        Add(_licence);
        Add(_subject);
        Add(_model);
        Add(_event);
        Add(_since);
        Add(_until);
        _event.Validators.Add(r =>
        {
            string? name = r.GetValueOrDefault<string?>();
            if (name is not null && (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterLower(c) || c is '.' or '-')))
            {
                r.AddError($"--event '{name}' is not an audit event name: lower-case letters, '.' and '-', e.g. key.released, key.refused, licence.changed (docs/protocol.md section 4).");
            }
        });
        Validators.Add(r =>
        {
            if (r.GetValue(_since) is { } since && r.GetValue(_until) is { } until && until <= since)
            {
                r.AddError("--until must be later than --since.");
            }
        });
        Add(_json);
        AddServerOptions();
        Add(new VerifyCommand(context));
    }

    protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
    {
        using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
        AuditPage page = await client.ReadAuditAsync(
            result.GetValue(_after),
            Math.Clamp(result.GetValue(_limit), 1, 500),
            result.GetValue(_licence),
            result.GetValue(_subject),
            result.GetValue(_model),
            result.GetValue(_event),
            result.GetValue(_since),
            result.GetValue(_until),
            cancellationToken).ConfigureAwait(false);
        if (result.GetValue(_json))
        {
            Context.Out.WriteLine(JsonSerializer.Serialize(page, ProtocolJson.Default.AuditPage));
            return ExitCodes.Success;
        }

        if (page.Items.Count == 0)
        {
            bool filtered = result.GetValue(_licence) is not null || result.GetValue(_subject) is not null || result.GetValue(_model) is not null || result.GetValue(_event) is not null || result.GetValue(_since) is not null || result.GetValue(_until) is not null;
            Context.Out.WriteLine(filtered ? "no records match" : result.GetValue(_after) is null ? "the audit log is empty" : "no records after that id");
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
            Context.Out.WriteLine($"(more: the same command with --after {next})");
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
