using System.CommandLine;
using System.CommandLine.Parsing;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal licence add|revoke|list|edit|devices|remove-device</c> (<c>license</c> is an alias).</summary>
internal sealed class LicenceCommand : Command
{
    public LicenceCommand(CliContext context)
        : base("licence", "Manage licences on a key server.")
    {
        Aliases.Add("license");
        Add(new AddCommand(context));
        Add(new RevokeCommand(context));
        Add(new ListCommand(context));
        Add(new EditCommand(context));
        Add(new DevicesCommand(context));
        Add(new RemoveDeviceCommand(context));
    }

    internal static DeviceEntry Entry(DeviceItem d) => new(d.Thumbprint, d.FirstSeen, d.LastSeen);

    /// <summary>"attestation policy store-apps" or "no attestation policy".</summary>
    private static string PolicyText(string? policy) => policy is null ? "no attestation policy" : $"attestation policy {policy}";

    private sealed class EditCommand : AdminVerbCommand
    {
        private readonly Argument<string> _id = new("LICENCE-ID") { Description = "The licence to change." };
        private readonly Option<DateTimeOffset?> _expires = VerbOptions.Time("--expires", "New end of validity: " + Times.Format + ".");
        private readonly Option<bool> _noExpiry = new("--no-expiry") { Description = "Remove the licence's end of validity: it stays valid until revoked." };
        private readonly Option<int?> _maxDevices = new("--max-devices") { HelpName = "N", Description = "New device limit; lower than the devices registered keeps them and refuses new ones." };
        private readonly Option<string> _models = new("--models") { HelpName = "IDS", Description = "The models the licence covers from now on: comma-separated ids, or '*' for all." };
        private readonly Option<string> _policy = AttestationPolicyOption("From now on, devices must be attested under this policy of the key server's configuration (Attestation:Policies); registered devices attest at their next release.");
        private readonly Option<bool> _noPolicy = new("--no-attestation-policy") { Description = "Remove the licence's attestation policy: devices get keys without attestation." };
        private readonly Option<bool> _json = VerbOptions.Json();

        public EditCommand(CliContext context)
            : base("edit", """
                Change a licence's end of validity (or remove it), device limit, models or attestation policy; what is not
                given stays.
                Lowering the device limit below the devices registered keeps them working and refuses new ones
                ('modelseal licence remove-device' frees a slot). With a new attestation policy, registered devices
                without an accepted attestation must attest at their next release (403 attestation-rejected otherwise).

                Examples:
                  modelseal licence edit lic_0123456789abcdef --expires 2027-06-30 --admin-credential-file admin.credential
                  modelseal licence edit lic_0123456789abcdef --no-expiry
                  modelseal licence edit lic_0123456789abcdef --max-devices 3 --models classifier,detector --json
                  modelseal licence edit lic_0123456789abcdef --attestation-policy store-apps
                  modelseal licence edit lic_0123456789abcdef --no-attestation-policy
                """, context)
        {
            Add(_id);
            Add(_expires);
            Add(_noExpiry);
            Add(_maxDevices);
            Add(_models);
            Add(_policy);
            Add(_noPolicy);
            Add(_json);
            AddServerOptions();
            Validators.Add(r =>
            {
                ValidatePolicyName(r, _policy, "--attestation-policy needs a policy name; to remove the licence's policy, use --no-attestation-policy.");
                if (r.GetResult(_expires) is null && r.GetResult(_noExpiry) is null && r.GetResult(_maxDevices) is null && r.GetResult(_models) is null && r.GetResult(_policy) is null && r.GetResult(_noPolicy) is null)
                {
                    r.AddError("modelseal licence edit needs at least one of --expires, --no-expiry, --max-devices, --models, --attestation-policy and --no-attestation-policy.");
                }
                else if (r.GetResult(_expires) is not null && r.GetResult(_noExpiry) is not null)
                {
                    r.AddError("--expires and --no-expiry cannot be used together: give a date to set the end of validity, or --no-expiry to remove it.");
                }
                else if (r.GetResult(_policy) is not null && r.GetResult(_noPolicy) is not null)
                {
                    r.AddError("--attestation-policy and --no-attestation-policy cannot be used together: give a policy name to set one, or --no-attestation-policy to remove it.");
                }
                else if (r.GetResult(_maxDevices) is { Tokens: [.., var n] } && int.TryParse(n.Value, System.Globalization.CultureInfo.InvariantCulture, out int max) && max < 1)
                {
                    r.AddError("--max-devices must be at least 1 (revoke the licence to stop every device: 'modelseal licence revoke LICENCE-ID').");
                }
            });
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            string id = result.GetRequiredValue(_id);
            string[]? models = result.GetValue(_models)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            DateTimeOffset? expires = result.GetValue(_expires);
            if (expires is { } end && end <= Context.Time.GetUtcNow())
            {
                Context.WriteWarning($"--expires {Rfc3339.Format(end)} is in the past: the licence is expired from now on, and no device will get a key with it.");
            }

            LicenceResponse? before = (await client.ListLicencesAsync(cancellationToken).ConfigureAwait(false)).Items.FirstOrDefault(l => l.LicenceId == id);
            string? policy = result.GetValue(_noPolicy) ? string.Empty : result.GetValue(_policy); // "" removes it
            LicenceResponse licence = await WithPolicyAsync(
                policy,
                () => client.EditLicenceAsync(id, new EditLicenceRequest(result.GetValue(_noExpiry) ? string.Empty : Rfc3339.Format(expires), result.GetValue(_maxDevices), models, policy), cancellationToken)).ConfigureAwait(false); // "" removes the expiry
            List<string> changed = [];
            if (before is not null)
            {
                if (before.ExpiresAt != licence.ExpiresAt)
                {
                    changed.Add("expiresAt");
                }

                if (before.MaxDevices != licence.MaxDevices)
                {
                    changed.Add("maxDevices");
                }

                if (!before.Models.SequenceEqual(licence.Models, StringComparer.Ordinal))
                {
                    changed.Add("models");
                }

                if (before.AttestationPolicy != licence.AttestationPolicy)
                {
                    changed.Add("attestationPolicy");
                }
            }

            WriteResult(
                result.GetValue(_json),
                new LicenceEditResult(client.Server.ToString(), Entry(licence), changed),
                changed.Count == 0
                    ? $"licence {licence.LicenceId} ({licence.Subject}) already had these values; nothing changed."
                    : $"changed licence {licence.LicenceId} ({licence.Subject}): {string.Join(", ", changed)}; now {string.Join(",", licence.Models)}, up to {Text.Plural(licence.MaxDevices, "device")}, expires {licence.ExpiresAt ?? "never"}, {PolicyText(licence.AttestationPolicy)}");
            return ExitCodes.Success;
        }
    }

    private sealed class DevicesCommand : AdminVerbCommand
    {
        private readonly Argument<string> _id = new("LICENCE-ID") { Description = "The licence whose devices to list." };
        private readonly Option<bool> _json = VerbOptions.Json();

        public DevicesCommand(CliContext context)
            : base("devices", """
                List the devices registered for a licence (by the thumbprint of their public key), as a table.

                Examples:
                  modelseal licence devices lic_0123456789abcdef --admin-credential-file admin.credential
                  modelseal licence devices lic_0123456789abcdef --json
                """, context)
        {
            Add(_id);
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            string id = result.GetRequiredValue(_id);
            IReadOnlyList<DeviceItem> devices = (await client.ListDevicesAsync(id, cancellationToken).ConfigureAwait(false)).Items;
            int max = (await client.ListLicencesAsync(cancellationToken).ConfigureAwait(false)).Items.FirstOrDefault(l => l.LicenceId == id)?.MaxDevices ?? 0;
            if (result.GetValue(_json))
            {
                CliJsonContext.Write(Context, new LicenceDevicesResult(client.Server.ToString(), id, max, [.. devices.Select(Entry)]));
                return ExitCodes.Success;
            }

            if (devices.Count == 0)
            {
                Context.Out.WriteLine(Text.Safe($"no devices registered for licence {id} (up to {Text.Plural(max, "device")})"));
                return ExitCodes.Success;
            }

            Table.Write(Context.Out, ["THUMBPRINT", "FIRST SEEN", "LAST SEEN"], devices.Select(d => new[] { d.Thumbprint, d.FirstSeen, d.LastSeen }));
            return ExitCodes.Success;
        }
    }

    private sealed class RemoveDeviceCommand : AdminVerbCommand
    {
        private readonly Argument<string> _id = new("LICENCE-ID") { Description = "The licence." };
        private readonly Argument<string> _thumbprint = new("THUMBPRINT") { Description = "The device ('modelseal licence devices LICENCE-ID' shows the thumbprints)." };
        private readonly Option<bool> _json = VerbOptions.Json();

        public RemoveDeviceCommand(CliContext context)
            : base("remove-device", """
                Remove a device from a licence, which frees its slot for another device. The device gets no more keys
                unless a slot is free when it asks again.

                Examples:
                  modelseal licence remove-device lic_0123456789abcdef 3q2-7wVhS5lq1mAWh2dbBXm1yXk8d3mqv0l4aW0OqVs --admin-credential-file admin.credential
                """, context)
        {
            Add(_id);
            Add(_thumbprint);
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            string id = result.GetRequiredValue(_id);
            DeviceItem device = await client.RemoveDeviceAsync(id, result.GetRequiredValue(_thumbprint), cancellationToken).ConfigureAwait(false);
            WriteResult(
                result.GetValue(_json),
                new LicenceRemoveDeviceResult(client.Server.ToString(), id, Entry(device)),
                $"removed device {device.Thumbprint} (first seen {device.FirstSeen}) from licence {id}; its slot is free");
            return ExitCodes.Success;
        }
    }

    /// <summary>The licence as the --json results show it (never its credential).</summary>
    internal static LicenceEntry Entry(LicenceResponse l) => new(l.LicenceId, l.Subject, l.Models, l.MaxDevices, l.NotBefore, l.ExpiresAt, l.CreatedAt, l.RevokedAt, l.AttestationPolicy);

    /// <summary>The <c>--attestation-policy NAME</c> option of <c>add</c> and <c>edit</c>.</summary>
    private static Option<string> AttestationPolicyOption(string description) => new("--attestation-policy") { HelpName = "NAME", Description = description };

    /// <summary>Refuses an empty policy name (on edit, removing is --no-attestation-policy).</summary>
    private static void ValidatePolicyName(CommandResult r, Option<string> policy, string empty)
    {
        if (r.GetResult(policy) is { Tokens: [.., var name] } && string.IsNullOrWhiteSpace(name.Value))
        {
            r.AddError(empty);
        }
    }

    /// <summary>
    /// Runs an admin call that sends <paramref name="policy"/>: the server's <c>400 invalid-request</c> for it then means
    /// a name the server does not configure.
    /// </summary>
    private static async Task<T> WithPolicyAsync<T>(string? policy, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (KeyServerException e) when (policy is { Length: > 0 } && e.Status == 400 && e.Code == ProblemCodes.InvalidRequest)
        {
            throw new CliException(
                ExitCodes.ServerError,
                e.Message,
                $"check the attestation policy name '{policy}': it must be one of the key server's Attestation:Policies (docs/deploy.md \"Configuration reference\"); names are case-sensitive.",
                e);
        }
    }

    private sealed class AddCommand : AdminVerbCommand
    {
        private readonly Option<string> _subject = new("--subject") { Required = true, HelpName = "SUBJECT", Description = "Who the licence is for: the 'sub' of its tokens." };
        private readonly Option<string> _models = new("--models") { Required = true, HelpName = "IDS", Description = "Comma-separated model ids the licence covers, or '*' for all." };
        private readonly Option<DateTimeOffset?> _notBefore = VerbOptions.Time("--not-before", "Start of validity: " + Times.Format + ".");
        private readonly Option<DateTimeOffset?> _expires = VerbOptions.Time("--expires", "End of validity: " + Times.Format + ".");
        private readonly Option<int> _maxDevices = new("--max-devices") { HelpName = "N", Description = "How many devices may obtain keys.", DefaultValueFactory = _ => 1 };
        private readonly Option<string> _policy = AttestationPolicyOption("Devices must be attested under this policy of the key server's configuration (Attestation:Policies) to get keys.");
        private readonly Option<string> _credentialOut = VerbOptions.Out("File to write the licence credential to (owner-only); it is shown nowhere else.");
        private readonly Option<bool> _json = VerbOptions.Json();

        public AddCommand(CliContext context)
            : base("add", """
                Create a licence; its credential goes to --out (owner-only), never to the terminal. Warns (on standard
                error) when --expires is in the past or a model is not on the key server. With --attestation-policy, a
                device gets keys only with attestation evidence the policy accepts (the app registers an
                IDeviceAttestation; docs/client.md "Attestation").

                Examples:
                  modelseal licence add --subject customer-42 --models classifier --out customer-42.credential
                  modelseal licence add --subject acme --models '*' --max-devices 10 --expires 2027-01-01 --out acme.credential
                  modelseal licence add --subject acme-phones --models classifier --attestation-policy store-apps --out acme-phones.credential
                """, context)
        {
            Add(_subject);
            Add(_models);
            Add(_notBefore);
            Add(_expires);
            Add(_maxDevices);
            Add(_policy);
            Add(_credentialOut);
            Add(_json);
            AddServerOptions();
            Validators.Add(r => ValidatePolicyName(r, _policy, "--attestation-policy needs a policy name (one of the key server's Attestation:Policies); leave the option out for a licence without one."));
        }

        protected override string? GetOutputPath(ParseResult result) => result.GetValue(_credentialOut);

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            string output = result.GetRequiredValue(_credentialOut);
            Files.CheckOutput(output, force: null, ("the admin credential file", result.GetValue(CredentialOption)));
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            string[] models = result.GetRequiredValue(_models).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            DateTimeOffset? expires = result.GetValue(_expires);
            var warnings = new List<string>();
            if (expires is { } end && end <= Context.Time.GetUtcNow())
            {
                warnings.Add($"--expires {Rfc3339.Format(end)} is in the past: the licence is created expired, and no device will get a key with it.");
            }

            if (models.Any(m => m != "*"))
            {
                HashSet<string> known = [.. (await client.ListModelsAsync(cancellationToken).ConfigureAwait(false)).Items.Select(m => m.ModelId)];
                foreach (string unknown in models.Where(m => m != "*" && !known.Contains(m)))
                {
                    warnings.Add($"the key server has no model '{unknown}' (yet): the licence covers it once it is added ('modelseal model list' shows the models; check the spelling).");
                }
            }

            foreach (string warning in warnings)
            {
                Context.WriteWarning(warning);
            }

            string? policy = result.GetValue(_policy);
            LicenceCreatedResponse licence = await WithPolicyAsync(
                policy,
                () => client.CreateLicenceAsync(
                    new CreateLicenceRequest(result.GetRequiredValue(_subject), models, Rfc3339.Format(result.GetValue(_notBefore)), Rfc3339.Format(expires), result.GetValue(_maxDevices), AttestationPolicy: policy),
                    cancellationToken)).ConfigureAwait(false);
            await using (AtomicFile file = AtomicFile.Create(output, overwrite: false, ownerOnly: true))
            {
                await using (var writer = new StreamWriter(file.Stream, leaveOpen: true))
                {
                    await writer.WriteLineAsync(licence.Credential).ConfigureAwait(false);
                }

                await file.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            LicenceEntry entry = new(licence.LicenceId, licence.Subject, licence.Models, licence.MaxDevices, licence.NotBefore, licence.ExpiresAt, licence.CreatedAt, licence.RevokedAt, licence.AttestationPolicy);
            WriteResult(
                result.GetValue(_json),
                new LicenceAddResult(client.Server.ToString(), entry, output, warnings),
                $"created licence {licence.LicenceId} for {licence.Subject} ({string.Join(", ", licence.Models)}; up to {Text.Plural(licence.MaxDevices, "device")}{(licence.AttestationPolicy is { } p ? $"; attestation policy {p}" : string.Empty)}); credential in {output} (owner-only)");
            return ExitCodes.Success;
        }
    }

    private sealed class RevokeCommand : AdminVerbCommand
    {
        private readonly Argument<string> _id = new("LICENCE-ID") { Description = "The licence to revoke." };
        private readonly Option<bool> _json = VerbOptions.Json();

        public RevokeCommand(CliContext context)
            : base("revoke", """
                Revoke a licence: its devices get no more keys. Revoking a revoked licence changes nothing and says so.

                Examples:
                  modelseal licence revoke lic_0123456789abcdef --admin-credential-file admin.credential
                """, context)
        {
            Add(_id);
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            string id = result.GetRequiredValue(_id);

            // The server answers a second revocation as it did the first (it is idempotent): the state before tells them apart.
            LicenceResponse? before = (await client.ListLicencesAsync(cancellationToken).ConfigureAwait(false)).Items.FirstOrDefault(l => l.LicenceId == id);
            if (before?.RevokedAt is { } revokedAt)
            {
                WriteResult(
                    result.GetValue(_json),
                    new LicenceRevokeResult(client.Server.ToString(), Entry(before), AlreadyRevoked: true),
                    $"licence {before.LicenceId} ({before.Subject}) was already revoked at {revokedAt}; nothing changed.");
                return ExitCodes.Success;
            }

            LicenceResponse licence = await client.RevokeLicenceAsync(id, cancellationToken).ConfigureAwait(false);
            WriteResult(
                result.GetValue(_json),
                new LicenceRevokeResult(client.Server.ToString(), Entry(licence), AlreadyRevoked: false),
                $"revoked licence {licence.LicenceId} ({licence.Subject})");
            return ExitCodes.Success;
        }
    }

    private sealed class ListCommand : AdminVerbCommand
    {
        private readonly Option<bool> _json = VerbOptions.Json();

        public ListCommand(CliContext context)
            : base("list", """
                List the licences on the key server: a table, or with --json one object.

                Examples:
                  modelseal licence list --admin-credential-file admin.credential
                  modelseal licence list --json
                """, context)
        {
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            IReadOnlyList<LicenceResponse> licences = (await client.ListLicencesAsync(cancellationToken).ConfigureAwait(false)).Items;
            if (result.GetValue(_json))
            {
                CliJsonContext.Write(Context, new LicenceListResult(client.Server.ToString(), [.. licences.Select(Entry)]));
                return ExitCodes.Success;
            }

            if (licences.Count == 0)
            {
                Context.Out.WriteLine($"no licences on the key server at {client.Server}");
                return ExitCodes.Success;
            }

            DateTimeOffset now = Context.Time.GetUtcNow();
            Table.Write(
                Context.Out,
                ["LICENCE", "SUBJECT", "MODELS", "DEVICES", "NOT BEFORE", "EXPIRES", "ATTESTATION", "STATE"],
                licences.Select(l => new[] { l.LicenceId, l.Subject, string.Join(",", l.Models), "≤ " + l.MaxDevices.ToString(System.Globalization.CultureInfo.InvariantCulture), l.NotBefore, l.ExpiresAt, l.AttestationPolicy, State(l, now) }));
            return ExitCodes.Success;
        }

        private static string State(LicenceResponse l, DateTimeOffset now) =>
            l.RevokedAt is not null ? "revoked " + l.RevokedAt
            : Rfc3339.TryParse(l.ExpiresAt, out DateTimeOffset expires) && expires <= now ? "expired"
            : Rfc3339.TryParse(l.NotBefore, out DateTimeOffset start) && start > now ? "not yet valid"
            : "active";
    }
}
