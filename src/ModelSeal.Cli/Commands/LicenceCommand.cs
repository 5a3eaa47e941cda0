using System.CommandLine;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal licence add|revoke|list</c> (<c>license</c> is an alias).</summary>
internal sealed class LicenceCommand : Command
{
    public LicenceCommand(CliContext context)
        : base("licence", "Manage licences on a key server.")
    {
        Aliases.Add("license");
        Add(new AddCommand(context));
        Add(new RevokeCommand(context));
        Add(new ListCommand(context));
    }

    private sealed class AddCommand : AdminVerbCommand
    {
        private readonly Option<string> _subject = new("--subject") { Required = true, HelpName = "SUBJECT", Description = "Who the licence is for: the 'sub' of its tokens." };
        private readonly Option<string> _models = new("--models") { Required = true, HelpName = "IDS", Description = "Comma-separated model ids the licence covers, or '*' for all." };
        private readonly Option<DateTimeOffset?> _notBefore = VerbOptions.Time("--not-before", "Start of validity: " + Times.Format + ".");
        private readonly Option<DateTimeOffset?> _expires = VerbOptions.Time("--expires", "End of validity: " + Times.Format + ".");
        private readonly Option<int> _maxDevices = new("--max-devices") { HelpName = "N", Description = "How many devices may obtain keys.", DefaultValueFactory = _ => 1 };
        private readonly Option<string> _credentialOut = VerbOptions.Out("File to write the licence credential to (owner-only); it is shown nowhere else.");

        public AddCommand(CliContext context)
            : base("add", """
                Create a licence; its credential goes to --out (owner-only), never to the terminal.

                Examples:
                  modelseal licence add --subject customer-42 --models classifier --out customer-42.credential
                  modelseal licence add --subject acme --models '*' --max-devices 10 --expires 2027-01-01 --out acme.credential
                """, context)
        {
            Add(_subject);
            Add(_models);
            Add(_notBefore);
            Add(_expires);
            Add(_maxDevices);
            Add(_credentialOut);
            AddServerOptions();
        }

        protected override string? GetOutputPath(ParseResult result) => result.GetValue(_credentialOut);

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            string output = result.GetRequiredValue(_credentialOut);
            Files.CheckOutput(output, force: null, ("the admin credential file", result.GetValue(CredentialOption)));
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            string[] models = result.GetRequiredValue(_models).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            LicenceCreatedResponse licence = await client.CreateLicenceAsync(
                new CreateLicenceRequest(result.GetRequiredValue(_subject), models, Rfc3339.Format(result.GetValue(_notBefore)), Rfc3339.Format(result.GetValue(_expires)), result.GetValue(_maxDevices)),
                cancellationToken).ConfigureAwait(false);
            await using (AtomicFile file = AtomicFile.Create(output, overwrite: false, ownerOnly: true))
            {
                await using (var writer = new StreamWriter(file.Stream, leaveOpen: true))
                {
                    await writer.WriteLineAsync(licence.Credential).ConfigureAwait(false);
                }

                await file.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            Context.Out.WriteLine(Text.Safe($"created licence {licence.LicenceId} for {licence.Subject} ({string.Join(", ", licence.Models)}; up to {Text.Plural(licence.MaxDevices, "device")}); credential in {output} (owner-only)"));
            return ExitCodes.Success;
        }
    }

    private sealed class RevokeCommand : AdminVerbCommand
    {
        private readonly Argument<string> _id = new("LICENCE-ID") { Description = "The licence to revoke." };

        public RevokeCommand(CliContext context)
            : base("revoke", """
                Revoke a licence: its devices get no more keys.

                Examples:
                  modelseal licence revoke lic_0123456789abcdef --admin-credential-file admin.credential
                """, context)
        {
            Add(_id);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            LicenceResponse licence = await client.RevokeLicenceAsync(result.GetRequiredValue(_id), cancellationToken).ConfigureAwait(false);
            Context.Out.WriteLine(Text.Safe($"revoked licence {licence.LicenceId} ({licence.Subject})"));
            return ExitCodes.Success;
        }
    }

    private sealed class ListCommand : AdminVerbCommand
    {
        public ListCommand(CliContext context)
            : base("list", """
                List the licences on the key server.

                Examples:
                  modelseal licence list --admin-credential-file admin.credential
                  modelseal licence list --json
                """, context)
        {
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            foreach (LicenceResponse l in (await client.ListLicencesAsync(cancellationToken).ConfigureAwait(false)).Items)
            {
                string state = l.RevokedAt is { } revoked ? "revoked " + revoked : l.ExpiresAt is { } expires ? "expires " + expires : "no expiry";
                Context.Out.WriteLine(Text.Safe($"{l.LicenceId}  {l.Subject}  models {string.Join(",", l.Models)}  devices ≤ {l.MaxDevices}  {state}"));
            }

            return ExitCodes.Success;
        }
    }
}
