using System.Buffers.Text;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;

namespace ModelSeal.Oidc;

/// <summary>
/// A user's sign-in at tests/oidc-provider/provider.mjs, as an app's sign-in library would do it but without a browser:
/// the authorization-code flow with PKCE (S256) over HTTP, answering the provider's login and consent pages, then the
/// code exchanged at the token endpoint with its <c>code_verifier</c> and <c>resource</c>.
/// <para>
/// Shared source, compiled into the test harness (ModelSeal.Server.Tests, <c>OidcProvider.SignInAsync</c>) and into the
/// CLI (<c>modelseal demo --sign-in</c>): one copy of the flow for both. Every failure is an
/// <see cref="InvalidOperationException"/> whose message names what went wrong and never holds a token; a provider
/// that cannot be reached is an <see cref="HttpRequestException"/>, left to the caller to phrase.
/// </para>
/// </summary>
internal static class OidcCodeFlow
{
    /// <summary>The redirect URI of the provider's clients. Nothing listens there: the code is read from the Location header.</summary>
    public static readonly Uri RedirectUri = new("http://127.0.0.1/callback");

    private const int MaxRedirects = 12;

    /// <summary>
    /// Signs <paramref name="login"/> in at the provider whose issuer is <paramref name="issuer"/> (a fresh session each
    /// time: login, then consent) and returns the tokens. Throws when the provider refuses (the message says its
    /// <c>error</c>, e.g. <c>access_denied</c> for an unknown login, <c>invalid_target</c> for an unknown resource). The
    /// ID token is null when <c>openid</c> is not among the scopes.
    /// </summary>
    public static async Task<OidcCodeFlowTokens> SignInAsync(string issuer, string login, string resource, IEnumerable<string> scopes, string clientId, CancellationToken cancellationToken)
    {
        using var handler = new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer(), UseProxy = false };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        JsonObject discovery = await GetJsonAsync(http, new Uri($"{issuer}/.well-known/openid-configuration"), cancellationToken).ConfigureAwait(false);
        var authorization = new Uri(Required(discovery, "authorization_endpoint"));
        var tokenEndpoint = new Uri(Required(discovery, "token_endpoint"));

        string verifier = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        string challenge = Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        string state = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16));
        string nonce = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16));
        string[] scope = [.. scopes];
        bool openId = scope.Contains("openid", StringComparer.Ordinal);
        var parameters = new Dictionary<string, string?>
        {
            ["client_id"] = clientId,
            ["response_type"] = "code",
            ["redirect_uri"] = RedirectUri.AbsoluteUri,
            ["scope"] = string.Join(' ', scope),
            ["resource"] = resource,
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = "S256",
            ["state"] = state,
        };
        if (openId)
        {
            parameters["nonce"] = nonce;
        }

        string authorize = QueryHelpers.AddQueryString(authorization.AbsoluteUri, parameters);

        Uri location = await RedirectAsync(http, new HttpRequestMessage(HttpMethod.Get, authorize), cancellationToken).ConfigureAwait(false);
        for (int step = 0; !IsRedirectUri(location); step++)
        {
            if (step == MaxRedirects)
            {
                throw new InvalidOperationException($"The sign-in did not reach the redirect URI after {MaxRedirects} steps (last: {location.AbsolutePath}).");
            }

            location = location.AbsolutePath.StartsWith("/interaction/", StringComparison.Ordinal)
                ? await InteractAsync(http, location, login, cancellationToken).ConfigureAwait(false)
                : await RedirectAsync(http, new HttpRequestMessage(HttpMethod.Get, location), cancellationToken).ConfigureAwait(false);
        }

        Dictionary<string, StringValues> answer = QueryHelpers.ParseQuery(location.Query);
        if (answer.TryGetValue("error", out StringValues error))
        {
            answer.TryGetValue("error_description", out StringValues description);
            throw new InvalidOperationException($"The sign-in of '{login}' ended with error={error}: {description}");
        }

        Check(answer.TryGetValue("state", out StringValues returnedState) && returnedState == state, "the authorization response's state is not the one sent");
        Check(answer.TryGetValue("iss", out StringValues iss) && iss == issuer, $"the authorization response's iss is '{iss}', not {issuer} (RFC 9207)");
        Check(answer.TryGetValue("code", out StringValues code) && !StringValues.IsNullOrEmpty(code), "the authorization response has no code");

        using var exchange = new HttpRequestMessage(HttpMethod.Post, tokenEndpoint)
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "authorization_code",
                ["code"] = code.ToString(),
                ["redirect_uri"] = RedirectUri.AbsoluteUri,
                ["client_id"] = clientId,
                ["code_verifier"] = verifier,
                ["resource"] = resource,
            }),
        };
        using HttpResponseMessage response = await http.SendAsync(exchange, cancellationToken).ConfigureAwait(false);
        string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"The token endpoint refused the code: {(int)response.StatusCode} {body}");
        }

        JsonObject tokens = JsonNode.Parse(body)?.AsObject() ?? throw new InvalidOperationException("The token endpoint answered no JSON object.");
        string accessToken = Required(tokens, "access_token");
        string? idToken = (string?)tokens["id_token"];
        if (idToken is not null)
        {
            Check((string?)ReadPart(idToken, 1)["nonce"] == nonce, "the ID token's nonce is not the one sent");
        }

        return new OidcCodeFlowTokens(accessToken, idToken, (int?)tokens["expires_in"] ?? 0, (string?)tokens["scope"] ?? "");
    }

    /// <summary>A part of a JWT (0: the JOSE header, 1: the claims), read without verifying it.</summary>
    public static JsonObject ReadPart(string jwt, int index)
    {
        ArgumentNullException.ThrowIfNull(jwt);
        string[] parts = jwt.Split('.');
        Check(parts.Length == 3, "not a compact JWS");
        return JsonNode.Parse(Base64Url.DecodeFromChars(parts[index]))?.AsObject() ?? throw new InvalidOperationException("a JWT part is not a JSON object");
    }

    /// <summary>Answers the provider's interaction page: the login form with <paramref name="login"/>, or the consent.</summary>
    private static async Task<Uri> InteractAsync(HttpClient http, Uri page, string login, CancellationToken cancellationToken)
    {
        JsonObject view = await GetJsonAsync(http, page, cancellationToken).ConfigureAwait(false);
        string prompt = Required(view, "prompt");
        var post = prompt switch
        {
            "login" => new HttpRequestMessage(HttpMethod.Post, new Uri(page.AbsoluteUri + "/login"))
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["login"] = login }),
            },
            "consent" => new HttpRequestMessage(HttpMethod.Post, new Uri(page.AbsoluteUri + "/confirm"))
            {
                Content = new FormUrlEncodedContent([]),
            },
            _ => throw new InvalidOperationException($"The provider asks for an unexpected prompt '{prompt}'."),
        };
        return await RedirectAsync(http, post, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends <paramref name="request"/> (and disposes it); the answer must be a redirect, whose target is returned.</summary>
    private static async Task<Uri> RedirectAsync(HttpClient http, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using (request)
        {
            using HttpResponseMessage response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            if (status is < 300 or > 399 || response.Headers.Location is null)
            {
                string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                throw new InvalidOperationException($"{request.Method} {request.RequestUri!.AbsolutePath}: expected a redirect, got {status}: {body}");
            }

            return new Uri(request.RequestUri!, response.Headers.Location);
        }
    }

    private static async Task<JsonObject> GetJsonAsync(HttpClient http, Uri uri, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using HttpResponseMessage response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"GET {uri.AbsolutePath}: {(int)response.StatusCode} {body}");
        }

        return JsonNode.Parse(body)?.AsObject() ?? throw new InvalidOperationException($"GET {uri.AbsolutePath}: not a JSON object");
    }

    private static bool IsRedirectUri(Uri location) =>
        string.Equals(location.GetLeftPart(UriPartial.Path), RedirectUri.GetLeftPart(UriPartial.Path), StringComparison.Ordinal);

    private static string Required(JsonObject json, string name) =>
        (string?)json[name] ?? throw new InvalidOperationException($"The provider's answer has no '{name}'.");

    private static void Check(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException("OpenID Connect provider: " + what + ".");
        }
    }
}

/// <summary>What one sign-in gave. <see cref="ToString"/> leaves the tokens out (they are secrets).</summary>
internal sealed record OidcCodeFlowTokens(string AccessToken, string? IdToken, int ExpiresIn, string Scope)
{
    public override string ToString() => $"OIDC tokens (scope '{Scope}', expires in {ExpiresIn} s, {(IdToken is null ? "no" : "with")} ID token)";
}
