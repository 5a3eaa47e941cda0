using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelSeal.Client;
using ModelSeal.Oidc;
using ModelSeal.Protocol;
using ModelSeal.Server;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Cli.Commands;

/// <summary>
/// <c>modelseal demo --sign-in</c>: the path of an app that signs its users in (docs/consumer-apps.md). A real OpenID
/// Connect provider (<see cref="DemoProvider"/>) runs on 127.0.0.1; the key server runs in-process, trusting it by
/// discovery, with one entitlement rule; the user signs in with the authorization-code flow and PKCE over HTTP
/// (<see cref="OidcCodeFlow"/>, the flow the server tests use); the app hands the access token to the client runtime's
/// <see cref="SignInTokenSource"/>, gets the key under the rule, opens the sealed model into ONNX Runtime and checks its
/// outputs. No licence exists and no credential file is on disk. Exit code 0 only if all of that held.
/// </summary>
internal static class SignInDemo
{
    /// <summary>The prefix of the demo's temporary directory (deleted at the end).</summary>
    internal const string TemporaryPrefix = "modelseal-signin-demo-";

    private const string Login = "ada";
    private const string Subject = "user-ada";
    private const string Plan = "pro";
    private const string RuleName = "pro-plan";
    private const string ClientId = "modelseal-app";
    private const string Resource = "urn:modelseal:keys";

    /// <summary>The provider's one account: what its tokens say about the demo user.</summary>
    private const string Accounts = $$"""
        { "{{Login}}": { "sub": "{{Subject}}", "email": "ada@example.com", "email_verified": true, "groups": ["ml-users"], "plan": "{{Plan}}", "tenant": "demo" } }
        """;

    /// <summary>Runs the demo; <paramref name="path"/> is the PATH to find <c>node</c> and <c>npm</c> on.</summary>
    public static async Task<int> RunAsync(CliContext context, bool json, string? path, CancellationToken cancellationToken)
    {
        TextWriter o = json ? context.Error : context.Out;
        // The prerequisites first: without them nothing is started and nothing is written.
        NodeTools tools = await DemoProvider.FindNodeAsync(path, cancellationToken).ConfigureAwait(false);
        DirectoryInfo work = Directory.CreateTempSubdirectory(TemporaryPrefix);
        try
        {
            byte[] plaintext = await DemoCommand.ReadSampleAsync(cancellationToken).ConfigureAwait(false);
            o.WriteLine("ModelSeal demo --sign-in: a user signs in at an OpenID Connect provider and opens a sealed model; the app holds no credential");
            DemoCommand.WriteModelLine(o, plaintext);

            // The identity provider: tests/oidc-provider (embedded), installed into the per-user cache on the first run.
            var clock = Stopwatch.StartNew();
            string cache = DemoProvider.CacheDirectory();
            bool installed = await DemoProvider.InstallAsync(tools, cache, cancellationToken).ConfigureAwait(false);
            string accounts = Path.Combine(work.FullName, "accounts.json");
            await File.WriteAllTextAsync(accounts, Accounts, cancellationToken).ConfigureAwait(false);
            await using DemoProvider provider = await DemoProvider.StartAsync(tools, cache, Path.Combine(work.FullName, "provider"), accounts, cancellationToken).ConfigureAwait(false);
            string issuer = provider.Issuer;
            o.WriteLine($"  provider   OpenID Connect provider (oidc-provider under Node.js {tools.Version}) at {issuer}, {(installed ? "its packages installed with npm ci into" : "its packages already in")} {cache}; up in {DemoCommand.Ms(clock)}");

            // The key server, trusting the provider by discovery, with one entitlement rule.
            clock.Restart();
            var serverOptions = new ServerOptions
            {
                DataDirectory = Path.Combine(work.FullName, "server"),
                Urls = "http://127.0.0.1:0",
                AdminCredentialOut = Path.Combine(work.FullName, "admin.credential"),
                TrustedIssuers = [new TrustedIssuerOptions { Issuer = issuer, Authority = issuer, Audiences = [Resource] }],
                Entitlements = new EntitlementOptions
                {
                    Rules =
                    [
                        new EntitlementRuleOptions
                        {
                            Name = RuleName,
                            Issuer = issuer,
                            Scopes = ["keys"],
                            Claims = new Dictionary<string, string>(StringComparer.Ordinal) { ["plan"] = Plan },
                            Models = [DemoCommand.ModelId],
                            MaxDevices = 1,
                        },
                    ],
                },
            };
            await using WebApplication server = ServerHost.Build(serverOptions, logging => logging.SetMinimumLevel(LogLevel.Error));
            Uri url = await DemoCommand.StartAsync(server, cancellationToken).ConfigureAwait(false);
            o.WriteLine($"  server     key server at {url} trusting {issuer} by discovery (/.well-known/openid-configuration, its access tokens for {Resource}); rule {RuleName}: users whose token says plan \"{Plan}\" may open {DemoCommand.ModelId} on 1 device; up in {DemoCommand.Ms(clock)}");

            // The publisher: the model and its sealed file. Its admin credential is read once and deleted.
            clock.Restart();
            string appDirectory = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            string sealedPath = Path.Combine(appDirectory, "classifier.mseal");
            using KeyServerAdminClient admin = ServerOptionsFactory.NewClient(url);
            await admin.LoginAdminAsync((await File.ReadAllTextAsync(serverOptions.AdminCredentialOut, cancellationToken).ConfigureAwait(false)).Trim(), cancellationToken).ConfigureAwait(false);
            File.Delete(serverOptions.AdminCredentialOut);
            (string version, string keyId) = await DemoCommand.PublishAsync(admin, plaintext, sealedPath, cancellationToken).ConfigureAwait(false);
            int licences = (await admin.ListLicencesAsync(cancellationToken).ConfigureAwait(false)).Items.Count;
            o.WriteLine($"  publish    model {DemoCommand.ModelId} v{version}, data key {keyId} created by the server and sealed to a publisher key; sealed file {Text.Plural(new FileInfo(sealedPath).Length, "byte")}; {Text.Plural(licences, "licence")}: the rule decides; {DemoCommand.Ms(clock)}");

            // The user signs in, as the app's sign-in library would (here over HTTP, without a browser).
            clock.Restart();
            OidcCodeFlowTokens tokens = await SignInAsync(issuer, cancellationToken).ConfigureAwait(false);
            JsonObject claims = OidcCodeFlow.ReadPart(tokens.AccessToken, 1);
            o.WriteLine($"  sign-in    {Login} signed in: authorization code with PKCE over HTTP (the provider's login and consent pages), an access token (JWT) for {Resource} with sub {(string?)claims["sub"]}, plan {(string?)claims["plan"]}, expiring in {tokens.ExpiresIn} s; {DemoCommand.Ms(clock)}");

            // The app: its sign-in hands the user's current token to SignInTokenSource; no licence, no credential file.
            string current = tokens.AccessToken;
            await using ServiceProvider app = new ServiceCollection()
                .AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning))
                .AddModelSeal(options => options.ServerUrl = url.ToString())
                .AddModelSealSignIn(async (forceRefresh, token) =>
                {
                    if (forceRefresh)
                    {
                        current = (await SignInAsync(issuer, token).ConfigureAwait(false)).AccessToken;
                    }

                    return current;
                })
                .BuildServiceProvider();
            DemoCommand.DemoRun run = await DemoCommand.OpenAndRunAsync(
                o,
                sealedPath,
                app.GetRequiredService<IModelKeySource>(),
                plaintext,
                key => $"released over HTTP in {Text.Duration(key)}: SignInTokenSource handed over {Login}'s access token, the key server checked it with the provider's discovered keys and granted the key under rule {RuleName}, sealed with HPKE (P-256) to this run's device key, opened in memory",
                cancellationToken).ConfigureAwait(false);
            string? subject = app.GetRequiredService<SignInTokenSource>().Subject;

            // What the key server recorded: the issuer, the subject and the rule that decided.
            AuditPage audit = await admin.ReadAuditAsync(null, 100, null, Subject, DemoCommand.ModelId, "key.released", null, null, cancellationToken).ConfigureAwait(false);
            AuditItem? release = audit.Items.LastOrDefault(item => item.Issuer == issuer);
            string? rule = release?.Attributes?.GetValueOrDefault("rule");
            o.WriteLine(release is null
                ? "  audit      NO key.released record for the user"
                : $"  audit      record {release.Id}: {release.Event} to {release.Subject} of {release.Issuer} under rule {rule}");

            // On disk: no credential of any kind.
            string[] credentialFiles = [.. Directory.EnumerateFiles(work.FullName, "*", SearchOption.AllDirectories).Where(f => Path.GetFileName(f).Contains("credential", StringComparison.OrdinalIgnoreCase))];
            string[] appFiles = [.. Directory.EnumerateFileSystemEntries(appDirectory).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
            o.WriteLine(credentialFiles.Length == 0
                ? $"  on disk    no credential file: the app's directory holds only {string.Join(", ", appFiles)}; the app got {Login}'s access token in memory from the sign-in; the publisher's admin credential was read once and deleted (all in a temporary directory, now deleted)"
                : $"  on disk    CREDENTIAL FILES: {string.Join(", ", credentialFiles)}");

            string? failure = !run.OutputsMatch ? "the sealed model's outputs differ from the plaintext model's."
                : subject != Subject ? $"the key was released to '{subject}', not to {Subject}."
                : rule != RuleName ? $"the audit log does not record the release under rule {RuleName} (it says '{rule}')."
                : licences != 0 ? "a licence exists; the sign-in path needs none."
                : credentialFiles.Length != 0 ? "a credential file exists; the sign-in path needs none."
                : null;
            if (failure is not null)
            {
                context.WriteError(failure);
                return ExitCodes.Failure;
            }

            await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
            o.WriteLine("demo passed.");
            if (json)
            {
                CliJsonContext.Write(context, new SignInDemoResult(
                    Passed: true, DemoCommand.ModelId, version, issuer, Subject, RuleName, CredentialFiles: 0, (long)run.Key.TotalMilliseconds,
                    (long)run.Open.TotalMilliseconds, (long)run.Inference.TotalMilliseconds, OutputsMatch: true, TamperRejected: true), SignInDemoJsonContext.Default);
            }

            return ExitCodes.Success;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>Signs the demo user in; a refusal or an unreachable provider is an error that says so.</summary>
    private static async Task<OidcCodeFlowTokens> SignInAsync(string issuer, CancellationToken cancellationToken)
    {
        try
        {
            return await OidcCodeFlow.SignInAsync(issuer, Login, Resource, ["openid", "keys"], ClientId, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or HttpRequestException)
        {
            throw new CliException(ExitCodes.Failure, $"the sign-in of '{Login}' at the OpenID Connect provider {issuer} failed: {e.Message}", "run the demo again; if it fails the same way, delete the cache directory the provider line names so that it is installed afresh.", e);
        }
    }
}

/// <summary>The --json result of <c>demo --sign-in</c>.</summary>
internal sealed record SignInDemoResult(
    bool Passed,
    string ModelId,
    string ModelVersion,
    string Issuer,
    string Subject,
    string Rule,
    int CredentialFiles,
    long KeyMilliseconds,
    long OpenMilliseconds,
    long InferenceMilliseconds,
    bool OutputsMatch,
    bool TamperRejected)
{
    [JsonPropertyOrder(-1)]
    public string Command { get; init; } = "demo";

    [JsonPropertyOrder(-1)]
    public bool SignIn { get; init; } = true;
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(SignInDemoResult))]
internal sealed partial class SignInDemoJsonContext : JsonSerializerContext;
