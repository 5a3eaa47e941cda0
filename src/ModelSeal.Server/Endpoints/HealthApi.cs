using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Http;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Endpoints;

/// <summary><c>GET /health/live</c> and <c>GET /health/ready</c> (docs/protocol.md section 5).</summary>
internal static class HealthApi
{
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/health").AllowAnonymous().WithTags("Health");
        group.MapGet("/live", () => TypedResults.Ok(new HealthResponse("live"))).WithSummary("The process is up.");
        group.MapGet("/ready", Ready).WithSummary("The database and the master key are usable.");
        return app;
    }

    internal static Results<Ok<HealthResponse>, ProblemHttpResult> Ready(Readiness readiness) =>
        readiness.IsReady()
            ? TypedResults.Ok(new HealthResponse("ready"))
            : Problems.Create(ProblemCodes.NotReady, "The database or the master key is not usable, or a trusted issuer's keys have not been fetched yet.");
}
