using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Http;

/// <summary>
/// Every error answer (docs/protocol.md section 6): <c>application/problem+json</c> with
/// <c>type = https://modelseal.dev/problems/&lt;code&gt;</c>, a title, the status and a detail without internals.
/// </summary>
internal static class Problems
{
    /// <summary>The one table of problem codes: the transport's own, and every domain <see cref="Refusal"/>'s.</summary>
    private static readonly Dictionary<string, (int Status, string Title)> Known = new(StringComparer.Ordinal)
    {
        [ProblemCodes.InvalidRequest] = (400, "The request is invalid."),
        [ProblemCodes.Unauthorized] = (401, "Authentication failed."), // also Refusal.Unauthorized
        // ProblemCodes.InvalidRequest is also Refusal.InvalidRequest.
        [ProblemCodes.Forbidden] = (403, "The token does not allow this."),
        [ProblemCodes.RequestTooLarge] = (413, "The request body is too large."),
        [ProblemCodes.UriTooLong] = (414, "The request target is too long."),
        [ProblemCodes.HeaderFieldsTooLarge] = (431, "The request header fields are too large."),
        [ProblemCodes.RateLimited] = (429, "Too many requests."),
        [ProblemCodes.NotReady] = (503, "The server is not ready."),
        [ProblemCodes.NotFound] = (404, "Not found."),
        [ProblemCodes.MethodNotAllowed] = (405, "Method not allowed."),
        [ProblemCodes.UnsupportedMediaType] = (415, "Unsupported media type."),
        [ProblemCodes.InternalError] = (500, "An internal error occurred."),
        [ProblemCodes.UnsupportedProtocolVersion] = (400, "The request uses a protocol version this server does not speak."),
        [Refusal.InvalidDeviceKey.Code()] = (400, "The device public key is not a valid P-256 point."),
        [Refusal.LicenceRevoked.Code()] = (403, "The licence is revoked or does not exist."),
        [Refusal.LicenceExpired.Code()] = (403, "The licence has expired."),
        [Refusal.LicenceNotYetValid.Code()] = (403, "The licence is not valid yet."),
        [Refusal.ModelNotLicensed.Code()] = (403, "The licence does not cover this model."),
        [Refusal.VersionDisabled.Code()] = (403, "The model version is disabled."),
        [Refusal.DeviceLimit.Code()] = (403, "The licence has reached its device limit."),
        [Refusal.ModelNotFound.Code()] = (404, "The model does not exist."),
        [Refusal.VersionNotFound.Code()] = (404, "The model version does not exist."),
        [Refusal.LicenceNotFound.Code()] = (404, "The licence does not exist."),
        [Refusal.ModelExists.Code()] = (409, "The model already exists."),
        [Refusal.VersionExists.Code()] = (409, "The model version already exists."),
        [Refusal.VersionDestroyed.Code()] = (410, "The model version's key was destroyed."),
        [Refusal.DeviceNotFound.Code()] = (404, "The licence or user has no such device."),
        [Refusal.NoEntitlement.Code()] = (403, "No licence or entitlement rule covers this token."),
        [Refusal.UserBlocked.Code()] = (403, "The user is blocked."),
        [Refusal.AttestationRejected.Code()] = (403, "The device's attestation was not accepted."),
        [Refusal.UserNotFound.Code()] = (404, "The user does not exist."),
        [Refusal.VersionsNotDestroyed.Code()] = (409, "The model has versions that are not destroyed."),
        [Refusal.AuditUnavailable.Code()] = (503, "The audit log is unavailable; no key was released."),
    };

    /// <summary>The answer to a domain refusal.</summary>
    public static ProblemHttpResult For(Refused refused)
    {
        ArgumentNullException.ThrowIfNull(refused);
        return Create(refused.Reason.Code(), refused.Detail);
    }

    /// <summary>True when the table knows <paramref name="code"/> (every <see cref="Refusal"/> must be known).</summary>
    internal static bool IsKnown(string code) => Known.ContainsKey(code);

    /// <summary>A problem answer with a known code.</summary>
    public static ProblemHttpResult Create(string code, string? detail = null, IDictionary<string, object?>? extensions = null)
    {
        (int status, string title) = Known[code];
        return TypedResults.Problem(detail, instance: null, status, title, ProblemCodes.TypePrefix + code, extensions);
    }

    /// <summary>400 invalid-request whose <c>errors</c> member names the fields at fault.</summary>
    public static ProblemHttpResult Invalid(Dictionary<string, string[]> errors, string? detail = null) =>
        Create(ProblemCodes.InvalidRequest, detail ?? "One or more fields are missing or invalid.", new Dictionary<string, object?> { ["errors"] = errors });

    /// <summary>400 invalid-request naming one field.</summary>
    public static ProblemHttpResult Invalid(string field, string message) =>
        Invalid(new Dictionary<string, string[]> { [field] = [message] });

    /// <summary>Declares the problem answers of a group of endpoints in the OpenAPI document.</summary>
    public static TBuilder ProducesProblems<TBuilder>(this TBuilder builder, params int[] statuses)
        where TBuilder : IEndpointConventionBuilder
    {
        foreach (int status in statuses)
        {
            builder.WithMetadata(new ProducesResponseTypeMetadata(status, typeof(ProblemDetails), ["application/problem+json"]));
        }

        return builder;
    }

    /// <summary>Fills in type and title of problems the framework creates (status code pages, exceptions, auth).</summary>
    public static void Customize(ProblemDetailsContext context)
    {
        ProblemDetails problem = context.ProblemDetails;
        if (problem.Type is null || !problem.Type.StartsWith(ProblemCodes.TypePrefix, StringComparison.Ordinal))
        {
            string code = CodeFor(problem.Status ?? context.HttpContext.Response.StatusCode);
            problem.Type = ProblemCodes.TypePrefix + code;
            problem.Title = Known.TryGetValue(code, out var known) ? known.Title : problem.Title;
            if (problem.Status >= 500)
            {
                problem.Detail = null;
            }
        }

        problem.Extensions.Remove("exception");
    }

    /// <summary>Writes a problem directly (from middleware and authentication events).</summary>
    public static async Task WriteAsync(HttpContext context, string code, string? detail = null)
    {
        (int status, string title) = Known[code];
        context.Items[ServerTelemetry.ReasonItem] = code;
        context.Response.StatusCode = status;
        var problem = new ProblemDetails { Type = ProblemCodes.TypePrefix + code, Title = title, Status = status, Detail = detail };
        IProblemDetailsService service = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        await service.WriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem }).ConfigureAwait(false);
    }

    /// <summary>The problem code of an answer with this status that carries no code of its own.</summary>
    internal static string CodeFor(int status) => status switch
    {
        400 => ProblemCodes.InvalidRequest,
        401 => ProblemCodes.Unauthorized,
        403 => ProblemCodes.Forbidden,
        404 => ProblemCodes.NotFound,
        405 => ProblemCodes.MethodNotAllowed,
        413 => ProblemCodes.RequestTooLarge,
        414 => ProblemCodes.UriTooLong,
        415 => ProblemCodes.UnsupportedMediaType,
        429 => ProblemCodes.RateLimited,
        431 => ProblemCodes.HeaderFieldsTooLarge,
        503 => ProblemCodes.NotReady,
        _ when status >= 500 => ProblemCodes.InternalError,
        _ => ProblemCodes.InvalidRequest,
    };
}
