using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Http;

/// <summary>The middleware that measures key releases (<see cref="ServerTelemetry"/>).</summary>
internal static class ReleaseObserver
{
    /// <summary>
    /// Wraps <c>POST /v1/keys/release</c>: the release activity, the refusal counter and the latency histogram. Both
    /// are recorded when the response starts, so a client that has the answer also sees it counted.
    /// </summary>
    public static async Task ObserveAsync(HttpContext context, RequestDelegate next)
    {
        if (!HttpMethods.IsPost(context.Request.Method) || !context.Request.Path.Equals("/v1/keys/release", StringComparison.OrdinalIgnoreCase))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        ServerTelemetry telemetry = context.RequestServices.GetRequiredService<ServerTelemetry>();
        long start = Stopwatch.GetTimestamp();
        using Activity? activity = ServerTelemetry.Source.StartActivity(ServerTelemetry.ReleaseActivity, ActivityKind.Internal);
        context.Response.OnStarting(() =>
        {
            int status = context.Response.StatusCode;
            string outcome;
            if (status < 400)
            {
                outcome = "released";
            }
            else
            {
                outcome = context.Items[ServerTelemetry.ReasonItem] as string ?? Problems.CodeFor(status);
                telemetry.KeyRefused(outcome);
            }

            activity?.SetTag("modelseal.outcome", outcome);
            telemetry.ReleaseDuration(Stopwatch.GetElapsedTime(start).TotalMilliseconds, status < 400 ? "released" : "refused");
            return Task.CompletedTask;
        });
        await next(context).ConfigureAwait(false);
    }
}
