using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Security;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Http;

/// <summary>
/// Rate limits (docs/protocol.md section 6): every request counts against its client address; key releases also
/// count against the token's subject (the client address when there is none). Over the limit: 429 rate-limited with
/// <c>Retry-After</c>.
/// </summary>
internal static class RateLimits
{
    public const string ReleasePolicy = "releases";

    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    public static void AddModelSealRateLimits(this IServiceCollection services, ServerOptions options)
    {
        services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
                RateLimitPartition.GetFixedWindowLimiter(ClientAddress(context), _ => Limit(options.RequestsPerMinutePerClient)));
            limiter.AddPolicy(ReleasePolicy, context =>
            {
                string? subject = context.User.Identity?.IsAuthenticated == true ? Authentication.Subject(context.User) : null;
                string partition = subject is null ? "client:" + ClientAddress(context) : "sub:" + subject;
                return RateLimitPartition.GetFixedWindowLimiter(partition, _ => Limit(options.ReleasesPerMinutePerSubject));
            });
            limiter.OnRejected = async (context, cancellationToken) =>
            {
                TimeSpan retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan value) ? value : Window;
                int seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
                context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                await Problems.WriteAsync(context.HttpContext, ProblemCodes.RateLimited, $"Too many requests; retry after {seconds} s.").ConfigureAwait(false);
            };
        });
    }

    private static FixedWindowRateLimiterOptions Limit(int permits) => new()
    {
        PermitLimit = permits,
        Window = Window,
        QueueLimit = 0,
        AutoReplenishment = true,
    };

    private static string ClientAddress(HttpContext context) =>
        context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
}
