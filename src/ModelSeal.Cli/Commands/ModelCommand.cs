using System.CommandLine;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal model add ID</c> and <c>modelseal model list</c>.</summary>
internal sealed class ModelCommand : Command
{
    public ModelCommand(CliContext context)
        : base("model", "Manage models on a key server.")
    {
        Add(new AddCommand(context));
        Add(new ListCommand(context));
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
