using System.CommandLine;
using ModelSeal.Protocol;

namespace ModelSeal.Cli.Commands;

/// <summary><c>modelseal token issue --licence ID --credential-file FILE</c> (<c>--license</c> is an alias) (a development convenience).</summary>
internal sealed class TokenCommand : Command
{
    public TokenCommand(CliContext context)
        : base("token", "Tokens for testing.")
    {
        Add(new IssueCommand(context));
    }

    private sealed class IssueCommand : VerbCommand
    {
        private readonly Option<Uri> _server = ServerOptionsFactory.Server();
        private readonly Option<string> _licence = new("--licence", "--license") { Required = true, HelpName = "LICENCE-ID", Description = "The licence." };
        private readonly Option<string> _credentialFile = new("--credential-file") { Required = true, HelpName = "FILE", Description = "The licence credential file written by 'modelseal licence add'." };
        private readonly Option<bool> _json = VerbOptions.Json();

        public IssueCommand(CliContext context)
            : base("issue", """
                Exchange a licence credential for a short-lived device token and print it (for testing clients).

                Examples:
                  modelseal token issue --licence lic_0123456789abcdef --credential-file customer-42.credential
                  modelseal token issue --licence lic_0123456789abcdef --credential-file customer-42.credential --json
                """, context)
        {
            Add(_licence);
            Add(_credentialFile);
            Add(_json);
            Add(_server);
        }

        protected override async Task<int> ExecuteAsync(ParseResult result, CancellationToken cancellationToken)
        {
            using KeyServerAdminClient client = ServerOptionsFactory.NewClient(ServerOptionsFactory.ServerUri(result, _server));
            string credential = SecretFiles.ReadCredential(result.GetRequiredValue(_credentialFile), "the licence credential file", "pass the file 'modelseal licence add --out' wrote.");
            TokenResponse token;
            try
            {
                token = await client.IssueLicenceTokenAsync(result.GetRequiredValue(_licence), credential, cancellationToken).ConfigureAwait(false);
            }
            catch (KeyServerException e) when (e.Status == 401)
            {
                throw new CliException(
                    ExitCodes.ServerError,
                    e.Message,
                    "check --licence and --credential-file: the file must be the one 'modelseal licence add --out' wrote for that licence ('modelseal licence list' shows the licences).",
                    e);
            }

            string licenceId = result.GetRequiredValue(_licence);
            WriteResult(result.GetValue(_json), new TokenIssueResult(client.Server.ToString(), licenceId, token.AccessToken, token.TokenType, token.ExpiresIn), token.AccessToken);
            Context.WriteWarning($"this token grants key release for {token.ExpiresIn} s; treat it as a secret.");
            return ExitCodes.Success;
        }
    }
}
