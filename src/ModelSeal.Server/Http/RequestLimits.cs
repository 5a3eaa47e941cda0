using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Http;

/// <summary>
/// The documented limits on a request's target and header fields (docs/protocol.md section 6.1). They are checked
/// before routing and authentication look at the request, so that a request over them gets a problem answer like
/// every other error (414 uri-too-long, 431 request-header-fields-too-large). Kestrel's own limits
/// (<see cref="ConfigureKestrel"/>) are set far above them: Kestrel itself, which answers before any middleware and
/// without a body, refuses only requests many times over the documented limits.
/// </summary>
internal static class RequestLimits
{
    /// <summary>The request target (path and query, as sent), in bytes.</summary>
    public const int MaxTargetBytes = 2048;

    /// <summary>One header field: its name plus its value, in bytes.</summary>
    public const int MaxFieldBytes = 8 * 1024;

    /// <summary>All header fields of a request together (each counted as its name plus its value), in bytes.</summary>
    public const int MaxHeaderBytes = 32 * 1024;

    /// <summary>Header fields in a request (a repeated field counts once per occurrence).</summary>
    public const int MaxFields = 100;

    /// <summary>Kestrel's own limit on the HTTP/1.1 request line (method, target, version).</summary>
    public const int KestrelRequestLineBytes = 64 * 1024;

    /// <summary>Kestrel's own limit on all header lines of a request.</summary>
    public const int KestrelHeaderBytes = 128 * 1024;

    /// <summary>Kestrel's own limit on the number of header fields.</summary>
    public const int KestrelFields = 1000;

    /// <summary>Raises Kestrel's limits far above the documented ones, which <see cref="Exceeded"/> enforces.</summary>
    public static void ConfigureKestrel(KestrelServerLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        limits.MaxRequestLineSize = KestrelRequestLineBytes;
        limits.MaxRequestHeadersTotalSize = KestrelHeaderBytes;
        limits.MaxRequestHeaderCount = KestrelFields;
        limits.Http2.MaxRequestHeaderFieldSize = KestrelHeaderBytes;
    }

    /// <summary>The problem code and detail when the request breaks a limit, or null.</summary>
    public static (string Code, string Detail)? Exceeded(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        string target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? (context.Request.PathBase + context.Request.Path + context.Request.QueryString).ToString();
        if (Encoding.UTF8.GetByteCount(target) > MaxTargetBytes)
        {
            return (ProblemCodes.UriTooLong, $"The request target (path and query) must be at most {MaxTargetBytes} bytes.");
        }

        int fields = 0;
        long total = 0;
        foreach (KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues> header in context.Request.Headers)
        {
            int name = Encoding.UTF8.GetByteCount(header.Key);
            foreach (string? value in header.Value)
            {
                int size = name + (value is null ? 0 : Encoding.UTF8.GetByteCount(value));
                if (size > MaxFieldBytes)
                {
                    return (ProblemCodes.HeaderFieldsTooLarge, $"Each header field (name and value) must be at most {MaxFieldBytes} bytes.");
                }

                fields++;
                total += size;
            }
        }

        return fields > MaxFields || total > MaxHeaderBytes
            ? (ProblemCodes.HeaderFieldsTooLarge, $"A request may have at most {MaxFields} header fields of at most {MaxHeaderBytes} bytes together.")
            : null;
    }
}
