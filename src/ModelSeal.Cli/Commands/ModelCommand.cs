using System.CommandLine;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal model add ID</c>, <c>model list</c>, <c>model disable|enable|destroy MODEL-ID VERSION</c> and
/// <c>model delete MODEL-ID --yes</c>.
/// </summary>
internal sealed class ModelCommand : Command
{
    public ModelCommand(CliContext context)
        : base("model", "Manage models on a key server.")
    {
        Add(new AddCommand(context));
        Add(new ListCommand(context));
        Add(new VersionStateCommand("disable", "disabled", """
            Disable a model version: devices get no more keys for it until it is enabled again (nothing is erased).

            Examples:
              modelseal model disable classifier 3 --admin-credential-file admin.credential
              modelseal model disable classifier 3 --json
            """, context));
        Add(new VersionStateCommand("enable", "enabled", """
            Enable a disabled model version again: devices get its key again.

            Examples:
              modelseal model enable classifier 3 --admin-credential-file admin.credential
            """, context));
        Add(new VersionStateCommand("destroy", "destroyed", """
            Erase a model version's key for good: no one, the key server included, can open its sealed files again.
            Cannot be undone, so it needs --yes.

            Examples:
              modelseal model destroy classifier 3 --yes --admin-credential-file admin.credential
            """, context));
        Add(new DeleteCommand(context));
    }

    /// <summary>The MODEL-ID argument, checked as an identifier.</summary>
    internal static Argument<string> ModelIdArgument(string description)
    {
        var argument = new Argument<string>("MODEL-ID") { Description = description };
        argument.Validators.Add(r =>
        {
            if (!Identifier.IsValid(r.GetValueOrDefault<string>() ?? string.Empty, Identifier.MaxIdLength))
            {
                r.AddError("MODEL-ID must be 1 to 128 ASCII characters, start with a letter or digit, and contain only letters, digits, '.', '_' and '-'.");
            }
        });
        return argument;
    }

    /// <summary>--yes, the confirmation of a change that cannot be undone.</summary>
    internal static Option<bool> Yes(string what) => new("--yes") { Description = $"Confirm: {what} cannot be undone." };

    /// <summary><c>modelseal model disable|enable|destroy MODEL-ID VERSION</c>.</summary>
    private sealed class VersionStateCommand : AdminVerbCommand
    {
        private readonly string _action;
        private readonly string _done;
        private readonly Argument<string> _model = ModelIdArgument("The model id.");
        private readonly Argument<string> _version = new("VERSION") { Description = "The version ('modelseal model list' shows them)." };
        private readonly Option<bool>? _yes;
        private readonly Option<bool> _json = VerbOptions.Json();

        public VersionStateCommand(string action, string done, string description, CliContext context)
            : base(action, description, context)
        {
            _action = action;
            _done = done;
            _version.Validators.Add(r =>
            {
                if (!Identifier.IsValid(r.GetValueOrDefault<string>() ?? string.Empty, Identifier.MaxVersionLength))
                {
                    r.AddError("VERSION must be 1 to 64 ASCII characters, start with a letter or digit, and contain only letters, digits, '.', '_' and '-'.");
                }
            });
            Add(_model);
            Add(_version);
            if (action == "destroy")
            {
                _yes = Yes("erasing the key");
                Add(_yes);
            }

            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            string model = result.GetRequiredValue(_model);
            string version = result.GetRequiredValue(_version);
            if (_yes is not null && !result.GetValue(_yes))
            {
                throw new CliException(
                    ExitCodes.Usage,
                    $"modelseal model {_action} erases the key of {model} version {version} for good: its sealed files can never be opened again; nothing was changed.",
                    $"to go ahead, run 'modelseal model {_action} {model} {version} --yes'; to stop releases only until further notice, 'modelseal model disable {model} {version}'.");
            }

            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            StateResponse state = await client.ChangeVersionStateAsync(model, version, _action, cancellationToken).ConfigureAwait(false);
            WriteResult(
                result.GetValue(_json),
                new VersionStateResult(client.Server.ToString(), model, version, state.State) { Command = "model " + _action },
                $"{_done} {model} version {version} on {client.Server} (now {state.State})");
            return ExitCodes.Success;
        }
    }

    /// <summary><c>modelseal model delete MODEL-ID --yes</c>.</summary>
    private sealed class DeleteCommand : AdminVerbCommand
    {
        private readonly Argument<string> _model = ModelIdArgument("The model to delete; every version must be destroyed.");
        private readonly Option<bool> _yes = Yes("deleting the model");
        private readonly Option<bool> _json = VerbOptions.Json();

        public DeleteCommand(CliContext context)
            : base("delete", """
                Delete a model whose versions are all destroyed (the audit log keeps its history). Refused while a
                version still has a key: destroy it first. Needs --yes.

                Examples:
                  modelseal model destroy classifier 1 --yes
                  modelseal model delete classifier --yes --admin-credential-file admin.credential
                """, context)
        {
            Add(_model);
            Add(_yes);
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            string model = result.GetRequiredValue(_model);
            if (!result.GetValue(_yes))
            {
                throw new CliException(
                    ExitCodes.Usage,
                    $"modelseal model delete removes the model {model} from the key server for good; nothing was changed.",
                    $"to go ahead, run 'modelseal model delete {model} --yes'.");
            }

            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            ModelDeletedResponse deleted = await client.DeleteModelAsync(model, cancellationToken).ConfigureAwait(false);
            WriteResult(
                result.GetValue(_json),
                new ModelDeleteResult(client.Server.ToString(), deleted.ModelId, deleted.Versions),
                $"deleted model {deleted.ModelId} ({Text.Plural(deleted.Versions, "destroyed version")}) on {client.Server}");
            return ExitCodes.Success;
        }
    }

    private sealed class AddCommand : AdminVerbCommand
    {
        private readonly Argument<string> _id = new("ID") { Description = "The model id (letters, digits, '.', '_', '-')." };
        private readonly Option<bool> _json = VerbOptions.Json();

        public AddCommand(CliContext context)
            : base("add", """
                Register a model id on the key server; 'modelseal encrypt --server' then adds versions.

                Examples:
                  modelseal model add classifier --admin-credential-file admin.credential
                  modelseal model add classifier --server https://keys.example.com --admin-credential-file admin.credential
                """, context)
        {
            _id.Validators.Add(r =>
            {
                if (!Identifier.IsValid(r.GetValueOrDefault<string>() ?? string.Empty, Identifier.MaxIdLength))
                {
                    r.AddError("ID must be 1 to 128 ASCII characters, start with a letter or digit, and contain only letters, digits, '.', '_' and '-'.");
                }
            });
            Add(_id);
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            ModelCreatedResponse model = await client.CreateModelAsync(result.GetRequiredValue(_id), cancellationToken).ConfigureAwait(false);
            WriteResult(result.GetValue(_json), new ModelAddResult(client.Server.ToString(), model.ModelId, model.CreatedAt), $"added model {model.ModelId} on {client.Server}");
            return ExitCodes.Success;
        }
    }

    private sealed class ListCommand : AdminVerbCommand
    {
        private readonly Option<bool> _json = VerbOptions.Json();

        public ListCommand(CliContext context)
            : base("list", """
                List the models and their versions on the key server.

                Examples:
                  modelseal model list --admin-credential-file admin.credential
                  modelseal model list --json
                """, context)
        {
            Add(_json);
            AddServerOptions();
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = await ConnectAsync(result, cancellationToken).ConfigureAwait(false);
            IReadOnlyList<ModelItem> models = (await client.ListModelsAsync(cancellationToken).ConfigureAwait(false)).Items;
            if (result.GetValue(_json))
            {
                CliJsonContext.Write(Context, new ModelListResult(
                    client.Server.ToString(),
                    [.. models.Select(m => new ModelEntry(m.ModelId, m.CreatedAt, [.. m.Versions.Select(v => new VersionEntry(v.Version, v.State, v.KeyId, v.CreatedAt))]))]));
                return ExitCodes.Success;
            }

            foreach (ModelItem model in models)
            {
                Context.Out.WriteLine(Text.Safe(model.ModelId));
                foreach (VersionItem version in model.Versions)
                {
                    Context.Out.WriteLine(Text.Safe($"  {version.Version,-12} {version.State,-10} key {version.KeyId}"));
                }
            }

            return ExitCodes.Success;
        }
    }
}
