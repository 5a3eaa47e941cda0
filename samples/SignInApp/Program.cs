// An app that signs its users in with its own identity provider (Entra ID, Auth0, Keycloak, Firebase, …) and opens a
// sealed model with a key released to the signed-in user. Nothing secret ships in the app: no licence credential, no
// client secret; the key server trusts the identity provider (its TrustedIssuers list) and the user's licence.
//
// Usage: dotnet run --project samples/SignInApp -- MODEL.mseal SERVER-URL [--sign-out]
//
// The sign-in itself is stood in for: the user's token (a JWT from the identity provider) is read from the file named
// by MODELSEAL_SIGNIN_TOKEN_FILE, or from MODELSEAL_SIGNIN_TOKEN. Set MODELSEAL_ANSWER_KEY to the key server's answer
// key id (`modelseal serve` prints it) to pin it, as a shipped app should.
using Microsoft.Extensions.DependencyInjection;
using ModelSeal;
using ModelSeal.Client;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: SignInApp MODEL.mseal SERVER-URL [--sign-out]");
    return 2;
}

await using ServiceProvider services = new ServiceCollection()
    .AddModelSeal(options =>
    {
        options.ServerUrl = args[1];
        options.AnswerKeyId = Environment.GetEnvironmentVariable("MODELSEAL_ANSWER_KEY");
        // In the app's private storage (on a phone, its files directory), created owner-only at first use:
        options.DeviceKeyFile = Path.Combine("modelseal", "device", "device.key");   // this device's P-256 key
        options.LeaseCacheDirectory = Path.Combine("modelseal", "leases");           // offline use until the lease expires
        // No LicenceId, no CredentialFile: the user's own sign-in is the credential.
    })
    .AddModelSealSignIn(GetUserTokenAsync)
    .BuildServiceProvider();

if (args.Length > 2 && args[2] == "--sign-out")
{
    // Sign-out: drop this user's offline leases (then let the identity provider's SDK forget the account). Another
    // user signed in later would not get them anyway, but they would stay on the device until they expire.
    string? subject = AccessToken.ReadSubject(await GetUserTokenAsync(forceRefresh: false, CancellationToken.None));
    int removed = subject is null ? 0 : await services.GetRequiredService<ILeaseCache>().RemoveSubjectAsync(subject);
    Console.WriteLine($"signed out: {removed} lease(s) removed");
    return 0;
}

IModelKeySource keys = services.GetRequiredService<IModelKeySource>();
await using FileStream file = File.OpenRead(args[0]);
SealedModelHeader header = await SealedModelHeader.ReadAsync(file);
file.Position = 0;
try
{
    using ModelKey key = await keys.GetKeyAsync(header);      // asks GetUserTokenAsync, then the key server
    using DecryptedModel model = await SealedModel.DecryptAsync(file, key);
    // model.Span → hand the bytes to the runtime (samples/ConsoleApp does it with ONNX Runtime); Dispose() zeroes them.
    Console.WriteLine($"{header.ModelId} {header.ModelVersion}: opened {model.Length} bytes for {services.GetRequiredService<SignInTokenSource>().Subject}");
    return 0;
}
catch (ModelKeyUnavailableException e)
{
    Console.Error.WriteLine($"{e.Reason}: {e.Message}");        // never contains the token
    return 1;
}
catch (InvalidOperationException e)
{
    // GetUserTokenAsync's own exception, unchanged (with MSAL: MsalUiRequiredException → show the sign-in UI).
    Console.Error.WriteLine(e.Message);
    return 3;
}

// The one place where the app's sign-in meets ModelSeal: hand over the signed-in user's current token.
static async ValueTask<string> GetUserTokenAsync(bool forceRefresh, CancellationToken cancellationToken)
{
    // With MSAL (Microsoft.Identity.Client), where `app` is the app's IPublicClientApplication and `scopes` the key
    // server's API scope (so that the access token is a JWT for the key server's audience):
    //
    //     IAccount account = (await app.GetAccountsAsync()).FirstOrDefault()
    //         ?? throw new InvalidOperationException("Nobody is signed in.");
    //     AuthenticationResult result = await app.AcquireTokenSilent(scopes, account)
    //         .WithForceRefresh(forceRefresh)
    //         .ExecuteAsync(cancellationToken);   // MsalUiRequiredException → AcquireTokenInteractive, then again
    //     return result.AccessToken;
    //
    // AppAuth: AuthState.performActionWithFreshTokens (set needsTokenRefresh when forceRefresh); Firebase:
    // user.getIdToken(forceRefresh) (an ID token: the key server's trusted issuer is then configured for ID tokens).
    //
    // Stand-in: a token someone obtained from the identity provider and put in a file or the environment. It cannot be
    // refreshed here, so forceRefresh reads it again.
    _ = forceRefresh;
    string? path = Environment.GetEnvironmentVariable("MODELSEAL_SIGNIN_TOKEN_FILE");
    string? token = path is { Length: > 0 }
        ? await File.ReadAllTextAsync(path, cancellationToken)
        : Environment.GetEnvironmentVariable("MODELSEAL_SIGNIN_TOKEN");
    return token?.Trim() is { Length: > 0 } t ? t : throw new InvalidOperationException("Nobody is signed in: set MODELSEAL_SIGNIN_TOKEN_FILE (or MODELSEAL_SIGNIN_TOKEN) to the user's token.");
}
