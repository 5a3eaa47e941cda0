using System.CommandLine;
using System.Globalization;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal user list|show|block|unblock|remove-device</c>: the users entitlement rules granted keys to (a trusted
/// issuer's subjects, docs/protocol.md section 3) and their devices.
/// </summary>
internal sealed class UserCommand : Command
{
    /// <summary>The largest page of users the key server answers.</summary>
    private const int MaxPage = 500;

    public UserCommand(CliContext context)
        : base("user", "Manage the users entitlement rules granted keys to (a trusted issuer's subjects) on a key server.")
    {
        Add(new ListCommand(context));
        Add(new ShowCommand(context));
        Add(new BlockCommand(block: true, context));
        Add(new BlockCommand(block: false, context));
        Add(new RemoveDeviceCommand(context));
    }

    /// <summary>The USER argument: a user id, the positive integer 'modelseal user list' shows.</summary>
    private static Argument<long> UserArgument(string description)
    {
        var argument = new Argument<long>("USER")
        {
            Description = description,
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
                if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long id) && id > 0)
                {
                    return id;
                }

                result.AddError($"USER '{text}' is not a user id: give the number in the USER column of 'modelseal user list' (users are numbered from 1; their subjects are not ids).");
                return 0;
            },
        };
        return argument;
    }

    private static UserEntry Entry(UserItem u) => new(u.UserId, u.Issuer, u.Subject, u.CreatedAt, u.LastSeen, u.BlockedAt, u.Devices);

    private static UserDeviceEntry Entry(UserDeviceItem d) => new(d.Thumbprint, d.Rule, d.FirstSeen, d.LastSeen);

    /// <summary>"user 3 (alice at https://idp.example)".</summary>
    private static string Describe(UserItem u) => $"user {u.UserId} ({u.Subject} at {u.Issuer})";

    private sealed class ListCommand : AdminVerbCommand
    {
        private readonly Option<string> _issuer = new("--issuer") { HelpName = "ISSUER", Description = "Only the users of this trusted issuer (its exact 'iss')." };
        private readonly Option<string> _subject = new("--subject") { HelpName = "SUBJECT", Description = "Only the users with this subject (their tokens' exact 'sub'): how to find a user's id from what the identity provider shows." };
        private readonly Option<long?> _after = new("--after") { HelpName = "ID", Description = "Show users after this user id." };
        private readonly Option<int> _limit = new("--limit") { HelpName = "N", Description = $"At most this many users (1–{MaxPage}).", DefaultValueFactory = _ => 100 };
        private readonly Option<bool> _json = VerbOptions.Json();

        public ListCommand(CliContext context)
            : base("list", """
                List the users as a table: id, issuer, subject, devices, first and last key release, state. A user is
                a trusted issuer's subject; it appears at its first key release under an entitlement rule.

                Examples:
                  modelseal user list --admin-credential-file admin.credential
                  modelseal user list --issuer https://login.example.com --after 500 --json
                  modelseal user list --issuer https://login.example.com --subject 248289761001
                """, context)
        {
            Add(_issuer);
            Add(_subject);
            Add(_after);
            Add(_limit);
            Add(_json);
            Validators.Add(r =>
            {
                if (r.GetResult(_limit) is { Tokens: [.., var n] } && int.TryParse(n.Value, CultureInfo.InvariantCulture, out int limit) && limit is < 1 or > MaxPage)
                {
                    r.AddError($"--limit must be from 1 to {MaxPage}; page on with --after (the list says the id to give).");
                }
                else if (r.GetResult(_after) is { Tokens: [.., var a] } && long.TryParse(a.Value, CultureInfo.InvariantCulture, out long after) && after < 0)
                {
                    r.AddError("--after must not be negative: give a user id from an earlier list.");
                }
            });
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            string? issuer = result.GetValue(_issuer);
            string? subject = result.GetValue(_subject);
            UserPageResponse page = await client.ListUsersAsync(result.GetValue(_after), result.GetValue(_limit), issuer, subject, cancellationToken).ConfigureAwait(false);
            if (result.GetValue(_json))
            {
                CliJsonContext.Write(Context, new UserListResult(client.Server.ToString(), [.. page.Items.Select(Entry)], page.Next));
                return ExitCodes.Success;
            }

            if (page.Items.Count == 0)
            {
                string filter = (subject is null ? string.Empty : $" with the subject '{subject}'") + (issuer is null ? string.Empty : $" of the issuer '{issuer}'");
                string after = result.GetValue(_after) is null ? string.Empty : " after that id";
                Context.Out.WriteLine(Text.Safe(
                    filter.Length > 0 ? $"no users{filter}{after} (give the issuer and subject exactly as in the tokens: 'iss' and 'sub')"
                    : after.Length == 0 ? $"no users on the key server at {client.Server} (a user appears at its first key release under an entitlement rule)"
                    : "no users after that id"));
                return ExitCodes.Success;
            }

            Table.Write(
                Context.Out,
                ["USER", "ISSUER", "SUBJECT", "DEVICES", "CREATED", "LAST SEEN", "STATE"],
                page.Items.Select(u => new[] { u.UserId.ToString(CultureInfo.InvariantCulture), u.Issuer, u.Subject, u.Devices.ToString(CultureInfo.InvariantCulture), u.CreatedAt, u.LastSeen, u.BlockedAt is null ? "active" : "blocked " + u.BlockedAt }));
            if (page.Next is { } next)
            {
                Context.Out.WriteLine($"(more: the same command with --after {next})");
            }

            return ExitCodes.Success;
        }
    }

    private sealed class ShowCommand : AdminVerbCommand
    {
        private readonly Argument<long> _user = UserArgument("The user id ('modelseal user list' shows them).");
        private readonly Option<bool> _json = VerbOptions.Json();

        public ShowCommand(CliContext context)
            : base("show", """
                Show a user: who it is, whether it is blocked, its devices (thumbprint, the entitlement rule each was
                registered under, first and last seen) and its latest key releases and refusals (newest first).

                Examples:
                  modelseal user show 3 --admin-credential-file admin.credential
                  modelseal user show 3 --json
                """, context)
        {
            Add(_user);
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            long id = result.GetValue(_user);
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            UserDetailResponse detail = await client.ShowUserAsync(id, cancellationToken).ConfigureAwait(false);
            if (result.GetValue(_json))
            {
                CliJsonContext.Write(Context, new UserShowResult(client.Server.ToString(), Entry(detail.User), [.. detail.Devices.Select(Entry)], detail.Releases));
                return ExitCodes.Success;
            }

            UserItem user = detail.User;
            Context.Out.WriteLine(Text.Safe($"{Describe(user)}: {(user.BlockedAt is null ? "active" : "blocked since " + user.BlockedAt)}; created {user.CreatedAt}, last seen {user.LastSeen}"));
            Context.Out.WriteLine();
            if (detail.Devices.Count == 0)
            {
                Context.Out.WriteLine("no devices registered");
            }
            else
            {
                Table.Write(Context.Out, ["THUMBPRINT", "RULE", "FIRST SEEN", "LAST SEEN"], detail.Devices.Select(d => new[] { d.Thumbprint, d.Rule, d.FirstSeen, d.LastSeen }));
            }

            Context.Out.WriteLine();
            if (detail.Releases.Count == 0)
            {
                Context.Out.WriteLine("no key releases or refusals recorded");
            }
            else
            {
                Table.Write(
                    Context.Out,
                    ["ID", "TIME", "EVENT", "OUTCOME", "MODEL", "VERSION", "DEVICE", "DECIDED BY"],
                    detail.Releases.Select(r => new[] { r.Id.ToString(CultureInfo.InvariantCulture), r.At, r.Event, r.Outcome, r.ModelId, r.Version, r.Device, DecidedBy(r) }));
            }

            return ExitCodes.Success;
        }

        /// <summary>The rule or licence that decided a release or refusal (the audit record says which).</summary>
        private static string? DecidedBy(AuditItem r) =>
            r.LicenceId is { } licence ? "licence " + licence
            : r.Attributes is not null && r.Attributes.TryGetValue("rule", out string? rule) ? "rule " + rule
            : null;
    }

    private sealed class BlockCommand : AdminVerbCommand
    {
        private readonly bool _block;
        private readonly Argument<long> _user;
        private readonly Option<bool> _json = VerbOptions.Json();

        public BlockCommand(bool block, CliContext context)
            : base(block ? "block" : "unblock", block
                ? """
                    Block a user: refused at its next key release (403 user-blocked), and its app drops the key it holds,
                    as after a revocation. Its devices stay registered. Blocking a blocked user changes nothing and says so.

                    Examples:
                      modelseal user block 3 --admin-credential-file admin.credential
                      modelseal user block 3 --json
                    """
                : """
                    Unblock a user: its devices get keys again at their next request. Unblocking a user that is not
                    blocked changes nothing and says so.

                    Examples:
                      modelseal user unblock 3 --admin-credential-file admin.credential
                    """, context)
        {
            _block = block;
            _user = UserArgument(block ? "The user to block ('modelseal user list' shows the ids)." : "The user to unblock ('modelseal user list' shows the ids).");
            Add(_user);
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            long id = result.GetValue(_user);
            string command = _block ? "user block" : "user unblock";
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);

            // The server answers a second block as it did the first (it is idempotent): the state before tells them apart.
            UserItem before = (await client.ShowUserAsync(id, cancellationToken).ConfigureAwait(false)).User;
            if ((before.BlockedAt is not null) == _block)
            {
                WriteResult(
                    result.GetValue(_json),
                    new UserBlockResult(client.Server.ToString(), Entry(before), Changed: false) { Command = command },
                    _block
                        ? $"{Describe(before)} was already blocked (since {before.BlockedAt}); nothing changed."
                        : $"{Describe(before)} is not blocked; nothing changed.");
                return ExitCodes.Success;
            }

            UserItem user = await client.SetUserBlockedAsync(id, _block, cancellationToken).ConfigureAwait(false);

            WriteResult(
                result.GetValue(_json),
                new UserBlockResult(client.Server.ToString(), Entry(user), Changed: true) { Command = command },
                _block
                    ? $"blocked {Describe(user)}: refused from its next key release ('modelseal user unblock {user.UserId}' undoes it)"
                    : $"unblocked {Describe(user)}: its devices get keys again");
            return ExitCodes.Success;
        }
    }

    private sealed class RemoveDeviceCommand : AdminVerbCommand
    {
        private readonly Argument<long> _user = UserArgument("The user.");
        private readonly Argument<string> _thumbprint = new("DEVICE") { Description = "The device's thumbprint ('modelseal user show USER' lists them)." };
        private readonly Option<bool> _json = VerbOptions.Json();

        public RemoveDeviceCommand(CliContext context)
            : base("remove-device", """
                Remove a device from a user, which frees its slot for another device (a new phone, say). The device
                gets no more keys unless a slot is free when it asks again.

                Examples:
                  modelseal user remove-device 3 3q2-7wVhS5lq1mAWh2dbBXm1yXk8d3mqv0l4aW0OqVs --admin-credential-file admin.credential
                """, context)
        {
            Add(_user);
            Add(_thumbprint);
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            long id = result.GetValue(_user);
            string thumbprint = result.GetRequiredValue(_thumbprint);
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            UserDeviceItem device;
            try
            {
                device = await client.RemoveUserDeviceAsync(id, thumbprint, cancellationToken).ConfigureAwait(false);
            }
            catch (KeyServerException e) when (e.Code == ProblemCodes.DeviceNotFound)
            {
                throw new CliException(ExitCodes.ServerError, e.Message, $"user {id} has no device '{thumbprint}': 'modelseal user show {id}' lists its devices by thumbprint.", e);
            }

            WriteResult(
                result.GetValue(_json),
                new UserRemoveDeviceResult(client.Server.ToString(), id, Entry(device)),
                $"removed device {device.Thumbprint} (rule {device.Rule}, first seen {device.FirstSeen}) from user {id}; its slot is free");
            return ExitCodes.Success;
        }
    }
}
