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
/// Rate limits (docs/protocol.md section 6): every request counts against its client address (IPv6 by /64,
/// <see cref="ClientAddresses.Partition"/>) before authentication looks at its token (<see cref="ClientRateLimit"/>);
/// key releases also count, after authentication, against the token's subject (the client address when there is
/// none). Over a limit: 429 rate-limited with <c>Retry-After</c>.
/// </summary>
internal static class RateLimits
{
    public const string ReleasePolicy = "releases";

    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    public static void AddModelSealRateLimits(this IServiceCollection services, ServerOptions options)
    {
        services.AddSingleton(_ => new ClientRateLimit(options.RequestsPerMinutePerClient)); // created, so disposed, by the container
        services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.AddPolicy(ReleasePolicy, context =>
            {
                string? subject = context.User.Identity?.IsAuthenticated == true ? Authentication.Subject(context.User) : null;
                string partition = subject is null ? "client:" + ClientAddresses.Partition(context.Connection.RemoteIpAddress) : "sub:" + subject;
                return RateLimitPartition.GetFixedWindowLimiter(partition, _ => Limit(options.ReleasesPerMinutePerSubject));
            });
            limiter.OnRejected = (context, _) => new ValueTask(RejectAsync(context.HttpContext, context.Lease));
        });
    }

    /// <summary>Answers 429 rate-limited with <c>Retry-After</c> (whole seconds, at least 1).</summary>
    internal static Task RejectAsync(HttpContext context, RateLimitLease lease)
    {
        TimeSpan retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan value) ? value : Window;
        int seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        return Problems.WriteAsync(context, ProblemCodes.RateLimited, $"Too many requests; retry after {seconds} s.");
    }

    private static FixedWindowRateLimiterOptions Limit(int permits) => new()
    {
        PermitLimit = permits,
        Window = Window,
        QueueLimit = 0,
        AutoReplenishment = true,
    };

    /// <summary>
    /// The per-address limit: a fixed window of one minute per client address partition, taken before routing and
    /// authentication, so that a client over its limit costs no token validation, no database read and no write.
    /// </summary>
    internal sealed class ClientRateLimit(int permitsPerMinute) : IMiddleware, IDisposable
    {
        private readonly PartitionedRateLimiter<HttpContext> _limiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            RateLimitPartition.GetFixedWindowLimiter(ClientAddresses.Partition(context.Connection.RemoteIpAddress), _ => Limit(permitsPerMinute)));

        public async Task InvokeAsync(HttpContext context, RequestDelegate next)
        {
            using RateLimitLease lease = _limiter.AttemptAcquire(context);
            if (!lease.IsAcquired)
            {
                await RejectAsync(context, lease).ConfigureAwait(false);
                return;
            }

            await next(context).ConfigureAwait(false);
        }

        public void Dispose() => _limiter.Dispose();
    }
}
