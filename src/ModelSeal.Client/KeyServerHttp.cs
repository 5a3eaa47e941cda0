using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Polly.CircuitBreaker;
using Polly.Timeout;
using ModelSeal.Protocol;

namespace ModelSeal.Client;

/// <summary>Counts the attempts of one request (placed inside the resilience handler, so it sees every retry).</summary>
internal sealed class AttemptCountingHandler : DelegatingHandler
{
    public static readonly HttpRequestOptionsKey<StrongBox<int>> Key = new("ModelSeal.Attempts");

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.Options.TryGetValue(Key, out StrongBox<int>? counter))
        {
            Interlocked.Increment(ref counter.Value);
        }

        return base.SendAsync(request, cancellationToken);
    }
}

/// <summary>JSON POSTs to the key server, with every failure turned into a <see cref="ModelKeyUnavailableException"/>.</summary>
internal static class KeyServerHttp
{
    public static Task<TAnswer> PostAsync<TBody, TAnswer>(HttpClient client, string path, TBody body, JsonTypeInfo<TBody> bodyType, JsonTypeInfo<TAnswer> answerType, string? bearer, string what, CancellationToken cancellationToken)
        where TAnswer : class =>
        SendAsync(client, path, JsonContent.Create(body, bodyType), answerType, bearer, what, cancellationToken);

    /// <summary>A POST with an empty body (for example <c>POST /v1/attestation/challenges</c>).</summary>
    public static Task<TAnswer> PostEmptyAsync<TAnswer>(HttpClient client, string path, JsonTypeInfo<TAnswer> answerType, string? bearer, string what, CancellationToken cancellationToken)
        where TAnswer : class =>
        SendAsync(client, path, null, answerType, bearer, what, cancellationToken);

    private static async Task<TAnswer> SendAsync<TAnswer>(HttpClient client, string path, HttpContent? content, JsonTypeInfo<TAnswer> answerType, string? bearer, string what, CancellationToken cancellationToken)
        where TAnswer : class
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative))
        {
            Content = content,
        };
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        var attempts = new StrongBox<int>();
        request.Options.Set(AttemptCountingHandler.Key, attempts);
        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (BrokenCircuitException e)
        {
            throw Unavailable(what, attempts.Value, "recent requests kept failing, so the client stops calling it for a few seconds (circuit open)", e);
        }
        catch (TimeoutRejectedException e)
        {
            throw Unavailable(what, attempts.Value, "it did not answer in time", e);
        }
        catch (HttpRequestException e)
        {
            throw Unavailable(what, attempts.Value, $"it could not be reached ({e.HttpRequestError})", e);
        }
        catch (OperationCanceledException e)
        {
            throw Unavailable(what, attempts.Value, "it did not answer in time", e);
        }

        using (response)
        {
            int status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode)
            {
                try
                {
                    return await response.Content.ReadFromJsonAsync(answerType, cancellationToken).ConfigureAwait(false)
                        ?? throw new JsonException("null");
                }
                catch (Exception e) when (e is JsonException or NotSupportedException)
                {
                    // A captive portal's or proxy's page answers 200 too: not the server's word, so the lease stays usable.
                    throw Unavailable(what, attempts.Value, "its answer is not a ModelSeal answer (not JSON of the expected shape: a captive portal or proxy page?)", e, status);
                }
            }

            ProblemResponse? problem = null;
            try
            {
                problem = await response.Content.ReadFromJsonAsync(ProtocolJson.Default.ProblemResponse, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
            {
                // Not a problem document; the status alone decides.
            }

            string? code = problem?.Code;
            if (status >= 500 || response.StatusCode is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests)
            {
                string why = response.StatusCode == HttpStatusCode.TooManyRequests ? "it is rate-limiting this client (429)" : $"it answered {status}{(code is null ? string.Empty : $" {code}")}";
                throw Unavailable(what, attempts.Value, why, null, status, code);
            }

            throw Refusal(status, code, problem, what, attempts.Value);
        }
    }

    private static ModelKeyUnavailableException Unavailable(string what, int attempts, string why, Exception? inner, int? status = null, string? code = null)
    {
        string tries = attempts > 0 ? $" after {attempts} attempt{(attempts == 1 ? string.Empty : "s")}" : string.Empty;
        return new ModelKeyUnavailableException(
            ModelKeyUnavailableReason.ServerUnavailable,
            $"The key server is unavailable for the {what} request{tries}: {why}. Check the network connection and ServerUrl, then try again; a model already opened online can be used offline until its lease expires.",
            inner, status, code, attempts);
    }

    private static ModelKeyUnavailableException Refusal(int status, string? code, ProblemResponse? problem, string what, int attempts)
    {
        string? detail = problem?.Detail;
        (ModelKeyUnavailableReason reason, string advice) = (status, code) switch
        {
            (401, _) => (ModelKeyUnavailableReason.Unauthorized, "With a licence, check the licence id and credential file; with the app's sign-in, check that the key server trusts the token (TrustedIssuers: its issuer, audience, token kind and algorithm) and that it has not expired."),
            (403, ProblemCodes.LicenceRevoked) => (ModelKeyUnavailableReason.LicenceRevoked, "The licence was revoked (or does not exist); contact the publisher."),
            (403, ProblemCodes.LicenceExpired) => (ModelKeyUnavailableReason.LicenceExpired, "The licence has expired; renew it with the publisher."),
            (403, ProblemCodes.LicenceNotYetValid) => (ModelKeyUnavailableReason.LicenceExpired, "The licence is not valid yet; try again once it starts."),
            (403, ProblemCodes.ModelNotLicensed) => (ModelKeyUnavailableReason.NotLicensed, "The licence does not cover this model; ask the publisher for a licence that does."),
            (403, ProblemCodes.VersionDisabled) => (ModelKeyUnavailableReason.VersionDisabled, "The publisher disabled this model version; update the app's model."),
            (410, _) => (ModelKeyUnavailableReason.VersionDisabled, "The key of this model version was destroyed; this file can never be opened again. Update the app's model."),
            (403, ProblemCodes.DeviceLimit) => (ModelKeyUnavailableReason.DeviceLimit, "All the licence's (or the user's) device slots are in use; free one with the publisher or raise the limit."),
            (403, ProblemCodes.NoEntitlement) => (ModelKeyUnavailableReason.NoEntitlement, "No licence and no entitlement rule of the key server covers the signed-in user; ask the publisher for access (a rule matching the user's claims, or a licence), or sign in with an account that has it."),
            (403, ProblemCodes.UserBlocked) => (ModelKeyUnavailableReason.UserBlocked, "The key server's administrator blocked the signed-in user; no key is released to any of the user's devices until they are unblocked. Contact the publisher."),
            (403, ProblemCodes.AttestationRejected) => (ModelKeyUnavailableReason.AttestationRejected, "The licence (or entitlement rule) requires an attested device, and the key server did not accept this device's attestation: the app must run on a device and build the publisher's attestation policy allows (genuine app, hardware-backed key), and register an IDeviceAttestation (docs/client.md \"Attestation\"). The server's audit record names the exact reason; contact the publisher."),
            (403, _) => (ModelKeyUnavailableReason.Unauthorized, "The token does not allow key release (no 'keys' scope); use a licence credential, or have the identity provider grant the key server's scope."),
            (404, _) => (ModelKeyUnavailableReason.ModelNotFound, "The server does not know this model or version; check the sealed file and ServerUrl."),
            _ => (ModelKeyUnavailableReason.InvalidResponse, "The client and server disagree about the protocol; check the versions of both."),
        };

        string server = detail is null ? string.Empty : $" The server said: {Trim(detail)}";
        return new ModelKeyUnavailableException(reason, $"The key server refused the {what} request ({status}{(code is null ? string.Empty : $" {code}")}). {advice}{server}", null, status, code, attempts)
        {
            Problem = problem,
        };
    }

    private static string Trim(string text) => text.Length <= 300 ? text : text[..300] + "…";
}
