using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Http;

/// <summary>
/// Reads a JSON request body with the server's own error answers: 400 invalid-request for anything that is not a JSON
/// object of the expected shape (the <c>errors</c> member names the JSON path), 413 request-too-large over
/// <see cref="MaxBytes"/>. Oversized bodies are read and discarded up to <see cref="DrainLimit"/> so that the client
/// receives the 413 instead of a reset connection.
/// </summary>
internal static class JsonBody
{
    /// <summary>The request body limit (docs/protocol.md section 6).</summary>
    public const int MaxBytes = 16 * 1024;

    /// <summary>
    /// The release request's body limit (docs/protocol.md section 6.1): room for attestation evidence of at most
    /// 10 certificates of 16 KiB, or App Attest objects of 32 KiB, in base64url.
    /// </summary>
    public const int ReleaseMaxBytes = 256 * 1024;

    /// <summary>The path of the one endpoint with the larger limit.</summary>
    public const string ReleasePath = "/v1/keys/release";

    /// <summary>The body limit of a request to <paramref name="path"/>.</summary>
    public static int LimitFor(PathString path) => path.Equals(ReleasePath, StringComparison.OrdinalIgnoreCase) ? ReleaseMaxBytes : MaxBytes;

    /// <summary>Kestrel's hard limit: up to this much of an oversized body is discarded before answering 413.</summary>
    public const int DrainLimit = 1024 * 1024;

    public static async Task<(T? Value, ProblemHttpResult? Problem)> ReadAsync<T>(HttpRequest request, CancellationToken cancellationToken, int maxBytes = MaxBytes)
        where T : class
    {
        if (!request.HasJsonContentType())
        {
            return (null, Problems.Invalid("body", "The body must be a JSON object sent with Content-Type: application/json."));
        }

        // A pooled buffer: a fresh one of the release limit per request would be a large-object-heap allocation each
        // time. What was read is zeroed before the buffer goes back (a token request's body holds a credential).
        byte[] buffer = ArrayPool<byte>.Shared.Rent(maxBytes + 1);
        int length = 0;
        try
        {
            try
            {
                int read;
                while (length <= maxBytes && (read = await request.Body.ReadAsync(buffer.AsMemory(length, maxBytes + 1 - length), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    length += read;
                }
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                return (null, TooLarge(maxBytes));
            }

            if (length > maxBytes)
            {
                await DrainAsync(request, cancellationToken).ConfigureAwait(false);
                return (null, TooLarge(maxBytes));
            }

            JsonSerializerOptions options = request.HttpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
            try
            {
                T? value = JsonSerializer.Deserialize<T>(buffer.AsSpan(0, length), options);
                return value is null ? (null, Problems.Invalid("body", "The body must be a JSON object, not null.")) : (value, null);
            }
            catch (JsonException e)
            {
                return (null, Problems.Invalid(string.IsNullOrEmpty(e.Path) ? "body" : e.Path, "Not valid JSON, or a value of the wrong type here."));
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer.AsSpan(0, length));
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads and discards the rest of the body (Kestrel stops it at <see cref="DrainLimit"/>).</summary>
    public static async Task DrainAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        try
        {
            await request.Body.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
        }
        catch (BadHttpRequestException)
        {
            request.HttpContext.Response.Headers.Connection = "close";
        }
    }

    /// <summary>Declares a JSON request body of type <typeparamref name="T"/> for the OpenAPI document.</summary>
    /// <remarks>
    /// Unlike <c>Accepts&lt;T&gt;</c> this adds no content-type constraint to routing, which would answer a
    /// non-JSON body with 415 instead of the protocol's 400 invalid-request.
    /// </remarks>
    public static RouteHandlerBuilder AcceptsJson<T>(this RouteHandlerBuilder builder) =>
        builder.WithMetadata(new JsonRequestBodyMetadata(typeof(T)));

    private static ProblemHttpResult TooLarge(int maxBytes) =>
        Problems.Create(ProblemCodes.RequestTooLarge, $"The request body must be at most {maxBytes} bytes.");
}

/// <summary>Endpoint metadata: the endpoint reads a JSON body of this type (see <see cref="JsonBody.AcceptsJson{T}"/>).</summary>
internal sealed record JsonRequestBodyMetadata(Type Type);
