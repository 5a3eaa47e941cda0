using System.CommandLine;
using System.Globalization;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal attestation reverify</c>: the device attestations the key server accepted, checked again now.</summary>
internal sealed class AttestationCommand : Command
{
    public AttestationCommand(CliContext context)
        : base("attestation", "Manage the device attestations a key server accepted (licences and entitlement rules with an attestation policy).")
    {
        Add(new ReverifyCommand(context));
    }

    private sealed class ReverifyCommand : AdminVerbCommand
    {
        private readonly Option<bool> _json = VerbOptions.Json();

        public ReverifyCommand(CliContext context)
            : base("reverify", """
                Re-verify every device attestation the key server accepted, now: each Android chain against the current
                status list (revoked or suspended attestation keys), the pinned roots and its policy. Devices that fail
                are rejected — their next release under a policy is refused (403 attestation-rejected, and the app drops
                its lease) — and listed as a table of thumbprint, evidence format and reason. The server also does this
                periodically (Attestation:ReverifyInterval). Audited (device.attestation-rejected per device).

                Exit codes: 0 when the check ran, whether or not devices were rejected (--json lists them under
                "rejected"); 7 when the key server refused or failed (for example one without attestation support).

                Examples:
                  modelseal attestation reverify --admin-credential-file admin.credential
                  modelseal attestation reverify --server https://keys.example.com --json
                """, context)
        {
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            ReverifyResponse answer;
            try
            {
                answer = await client.ReverifyAttestationsAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (KeyServerException e) when (e.Status is 404 or 405)
            {
                throw new CliException(
                    ExitCodes.ServerError,
                    $"the key server at {client.Server} has no attestation re-verification ({e.Status}).",
                    "upgrade the key server to a version with device attestation (docs/deploy.md \"Configuration reference\", Attestation).",
                    e);
            }

            if (result.GetValue(_json))
            {
                CliJsonContext.Write(Context, new AttestationReverifyResult(client.Server.ToString(), answer.Checked, answer.Rejected));
                return ExitCodes.Success;
            }

            Context.Out.WriteLine(Text.Safe(
                $"checked {Text.Plural(answer.Checked, "accepted attestation")} on {client.Server}: "
                + (answer.Rejected.Count == 0 ? "none rejected" : $"{answer.Rejected.Count.ToString(CultureInfo.InvariantCulture)} rejected now")));
            if (answer.Rejected.Count > 0)
            {
                Table.Write(Context.Out, ["THUMBPRINT", "FORMAT", "REASON"], answer.Rejected.Select(r => new[] { r.Thumbprint, r.Format, r.Reason }));
            }

            return ExitCodes.Success;
        }
    }
}
