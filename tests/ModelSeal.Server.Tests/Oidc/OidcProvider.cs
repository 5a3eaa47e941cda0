using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using ModelSeal.Oidc;

namespace ModelSeal.Server.Tests.Oidc;

/// <summary>
/// A real OpenID Connect provider for the tests: tests/oidc-provider/provider.mjs (the certified oidc-provider package
/// under Node) in a process of its own on 127.0.0.1, with its signing keys in a temporary state directory. Tokens come
/// from it through the authorization-code flow with PKCE, driven over HTTP (<see cref="SignInAsync"/>); access tokens
/// are JWTs (<c>typ</c> <c>at+jwt</c>) for the resource asked for. Keys rotate (<see cref="RotateKeysAsync"/>) and the
/// provider stops and restarts on the same port, so its issuer, discovery and JWKS URLs stay the same.
/// <para>
/// Without Node.js and npm the calling test is skipped, or fails under <c>CI=true</c>. The packages are installed with
/// <c>npm ci</c> on first use (<see cref="NodeProject"/>). The process exits when this object is disposed, and by itself
/// when the test process dies (its standard input closes).
/// </para>
/// </summary>
public sealed class OidcProvider : IAsyncDisposable
{
    /// <summary>The public client whose ID tokens are signed ES256.</summary>
    public const string ClientId = "modelseal-app";

    /// <summary>The public client whose ID tokens are signed RS256.</summary>
    public const string RsClientId = "modelseal-app-rs";

    /// <summary>The key server's resource: access tokens with <c>aud</c> <see cref="KeysAudience"/>, ES256, 300 s; scopes keys, models, admin.</summary>
    public const string KeysResource = "urn:modelseal:keys";

    /// <summary>The <c>aud</c> of the access tokens for <see cref="KeysResource"/>, <see cref="RsKeysResource"/> and <see cref="LongKeysResource"/>.</summary>
    public const string KeysAudience = KeysResource;

    /// <summary>Like <see cref="KeysResource"/> (same audience and scopes), but its access tokens are signed RS256.</summary>
    public const string RsKeysResource = "urn:modelseal:keys-rs";

    /// <summary>Like <see cref="KeysResource"/> (same audience and scopes), but its access tokens live two days.</summary>
    public const string LongKeysResource = "urn:modelseal:keys-long";

    /// <summary>Another API: access tokens for another audience (ES256, 300 s; scopes keys, models).</summary>
    public const string OtherResource = "urn:other:api";

    /// <summary>The redirect URI of both clients. Nothing listens there: the code is read from the Location header.</summary>
    public static readonly Uri RedirectUri = OidcCodeFlow.RedirectUri;

    /// <summary>The scopes <see cref="SignInAsync"/> asks for unless told otherwise.</summary>
    public static readonly IReadOnlyList<string> DefaultScopes = ["openid", "email", "keys"];

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly string _node;
    private readonly StringBuilder _log = new();
    private Process? _process;

    private OidcProvider(string node, string stateDirectory, string accountsFile)
    {
        _node = node;
        StateDirectory = stateDirectory;
        AccountsFile = accountsFile;
    }

    /// <summary>The issuer, <c>http://127.0.0.1:PORT</c>: the tokens' <c>iss</c>. The same after a restart.</summary>
    public string Issuer { get; private set; } = "";

    /// <summary>The port the provider listens on (chosen at the first start, kept by restarts).</summary>
    public int Port { get; private set; }

    /// <summary>The OpenID Connect discovery document: <c>{Issuer}/.well-known/openid-configuration</c>.</summary>
    public Uri DiscoveryUrl => new($"{Issuer}/.well-known/openid-configuration");

    /// <summary>The directory holding jwks.json (the signing keys, private) and a custom accounts file.</summary>
    public string StateDirectory { get; }

    /// <summary>The accounts file the provider reads: login → claims (sub, groups, plan, tenant, email, …).</summary>
    public string AccountsFile { get; }

    /// <summary>Whether the provider process is running.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>How long the last start took, from launching node to the ready line.</summary>
    public TimeSpan LastStartDuration { get; private set; }

    /// <summary>The exit code of the last process stopped, or null when none was (or it had to be killed).</summary>
    public int? LastExitCode { get; private set; }

    /// <summary>The key ids in the provider's keys file, in order (the first of each algorithm signs).</summary>
    public IReadOnlyList<string> Kids => OidcSigningKeys.Kids(StateDirectory);

    /// <summary>Everything the provider printed (stdout and stderr, every start). Never holds a token.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>
    /// Starts a provider on a free loopback port with new signing keys, and returns once it listens. The accounts are
    /// tests/oidc-provider/accounts.json (alice, bob, carol) unless <paramref name="accounts"/> gives others: an object
    /// mapping each login to its claims, each with a string <c>sub</c>. Access tokens carry every claim of the account
    /// as it is (any name, any JSON type); ID tokens carry <c>sub</c>, <c>groups</c>, <c>plan</c>, <c>tenant</c> and,
    /// with scope <c>email</c>, <c>email</c> and <c>email_verified</c>.
    /// </summary>
    public static async Task<OidcProvider> StartAsync(JsonObject? accounts = null, CancellationToken cancellationToken = default)
    {
        cancellationToken = Effective(cancellationToken);
        string node = await NodeProject.RequireInstalledAsync(cancellationToken);
        string state = Path.Combine(Path.GetTempPath(), "modelseal-oidc-" + Guid.NewGuid().ToString("N"));
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(state);
        }
        else
        {
            Directory.CreateDirectory(state, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        string accountsFile = Path.Combine(NodeProject.Folder, "accounts.json");
        if (accounts is not null)
        {
            accountsFile = Path.Combine(state, "accounts.json");
            await File.WriteAllTextAsync(accountsFile, accounts.ToJsonString(), cancellationToken);
        }

        var provider = new OidcProvider(node, state, accountsFile);
        try
        {
            await provider.LaunchAsync(port: 0, cancellationToken);
            return provider;
        }
        catch
        {
            await provider.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Signs <paramref name="login"/> in: the authorization-code flow with PKCE (S256) for <paramref name="resource"/>
    /// over HTTP, as an app's sign-in library would (a fresh session each time, login then consent), then exchanges the
    /// code at the token endpoint with its <c>code_verifier</c> and <c>resource</c>. Throws when the provider refuses
    /// (the message says its <c>error</c>, e.g. <c>access_denied</c> for an unknown login, <c>invalid_target</c> for an
    /// unknown resource). The ID token is null when <c>openid</c> is not among the scopes.
    /// </summary>
    public async Task<OidcTokens> SignInAsync(string login, string resource = KeysResource, IEnumerable<string>? scopes = null, string clientId = ClientId, CancellationToken cancellationToken = default)
    {
        cancellationToken = Effective(cancellationToken);
        try
        {
            OidcCodeFlowTokens tokens = await OidcCodeFlow.SignInAsync(Issuer, login, resource, scopes ?? DefaultScopes, clientId, cancellationToken);
            Secrets.Add("OIDC access token", tokens.AccessToken);
            if (tokens.IdToken is not null)
            {
                Secrets.Add("OIDC ID token", tokens.IdToken);
            }

            return new OidcTokens(tokens.AccessToken, tokens.IdToken, tokens.ExpiresIn, tokens.Scope);
        }
        catch (HttpRequestException e)
        {
            throw new InvalidOperationException($"The sign-in could not reach the provider at {Issuer} ({(IsRunning ? "running" : "not running")}): {e.Message}\nIts output:\n{Log}", e);
        }
    }

    /// <summary>
    /// Rotates the signing keys: a new EC (ES256) and a new RSA (RS256) key go first in the keys file, the old ones stay
    /// after them (so tokens signed before still verify against the JWKS), and the provider restarts on the same port.
    /// New tokens carry the new kids. Returns them (EC first).
    /// </summary>
    public async Task<IReadOnlyList<string>> RotateKeysAsync(CancellationToken cancellationToken = default)
    {
        IReadOnlyList<string> kids = OidcSigningKeys.Rotate(StateDirectory);
        await RestartAsync(cancellationToken);
        return kids;
    }

    /// <summary>The provider down (discovery and JWKS unreachable), until <see cref="RestartAsync"/>.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        try
        {
            if (!await ProcessTools.StopProviderAsync(process, StopTimeout))
            {
                LastExitCode = null;
                Append($"[harness] the provider did not exit within {StopTimeout} of its input closing: killed");
                return;
            }

            LastExitCode = process.ExitCode;
        }
        finally
        {
            process.Dispose();
        }
    }

    /// <summary>Stops the provider if it runs and starts it again on the same port, with the keys file as it is now.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        await StopAsync();
        await LaunchAsync(Port, Effective(cancellationToken));
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(StateDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A temporary directory: left behind at worst.
        }
    }

    public override string ToString() => $"OpenID Connect provider {Issuer} ({(IsRunning ? "running" : "stopped")})";

    /// <summary>The claims of a JWT, read without verifying it.</summary>
    public static JsonObject ReadPayload(string jwt) => OidcCodeFlow.ReadPart(jwt, 1);

    /// <summary>The JOSE header of a JWT, read without verifying it.</summary>
    public static JsonObject ReadHeader(string jwt) => OidcCodeFlow.ReadPart(jwt, 0);

    /// <summary>
    /// Launches provider.mjs and waits for its ready line; a start that fails or hangs is tried once more (a loaded CI
    /// machine once left one without its ready line for a minute), with both attempts' output in the error.
    /// </summary>
    private async Task LaunchAsync(int port, CancellationToken cancellationToken)
    {
        const int Attempts = 2;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await LaunchOnceAsync(port, cancellationToken);
                return;
            }
            catch (InvalidOperationException e) when (attempt < Attempts && !cancellationToken.IsCancellationRequested)
            {
                Append($"[harness] start attempt {attempt} failed ({e.InnerException?.GetType().Name}): trying again");
            }
        }
    }

    private async Task LaunchOnceAsync(int port, CancellationToken cancellationToken)
    {
        var started = Stopwatch.StartNew();
        (Process process, Task<string> ready) = ProcessTools.StartProvider(
            _node,
            NodeProject.Folder,
            ["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--state", StateDirectory, "--accounts", AccountsFile],
            Append);
        string issuer;
        try
        {
            issuer = await ready.WaitAsync(ReadyTimeout, cancellationToken);
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or OperationCanceledException)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync(CancellationToken.None);
            process.Dispose();
            throw new InvalidOperationException($"The OpenID Connect provider did not start within {started.Elapsed.TotalSeconds:F1} s ({e.GetType().Name}: {e.Message}). Its output:\n{Log}", e);
        }

        LastStartDuration = started.Elapsed;
        _process = process;
        var uri = new Uri(issuer);
        Check(port == 0 || uri.Port == port, $"the provider listens on {uri.Port}, not on {port}");
        Check(Issuer.Length == 0 || Issuer == issuer, $"the provider came back as {issuer}, not as {Issuer}");
        Issuer = issuer;
        Port = uri.Port;
    }

    private static void Check(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException("OpenID Connect provider: " + what + ".");
        }
    }

    private static CancellationToken Effective(CancellationToken cancellationToken) =>
        cancellationToken.CanBeCanceled ? cancellationToken : TestContext.Current.CancellationToken;

    private void Append(string line)
    {
        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}

/// <summary>What one sign-in gave. <see cref="ToString"/> leaves the tokens out (they are secrets).</summary>
public sealed record OidcTokens(string AccessToken, string? IdToken, int ExpiresIn, string Scope)
{
    public override string ToString() => $"OIDC tokens (scope '{Scope}', expires in {ExpiresIn} s, {(IdToken is null ? "no" : "with")} ID token)";
}
