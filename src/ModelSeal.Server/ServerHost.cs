using System.Data.Common;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Endpoints;
using ModelSeal.Server.Files;
using ModelSeal.Server.Http;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace ModelSeal.Server;

/// <summary>Builds the key server (docs/protocol.md) as a <see cref="WebApplication"/> ready to start.</summary>
public static class ServerHost
{
    /// <summary>
    /// Validates <paramref name="options"/> and the data directory (creating it, the database, the master key, the
    /// token key and the admin credential at first start) and builds the server. Start it with
    /// <c>StartAsync</c>/<c>RunAsync</c>; the bound addresses are in <c>WebApplication.Urls</c> after start.
    /// </summary>
    /// <param name="options">The configuration; copied, so later changes have no effect.</param>
    /// <param name="configureLogging">Configures logging (for example to replace the console provider).</param>
    /// <exception cref="ServerConfigurationException">Missing or unsafe configuration; the message says what to fix.</exception>
    public static WebApplication Build(ServerOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ServerOptions settings = options.Copy();
        ServerOptionsValidator.Validate(settings);
        IReadOnlyList<TrustedIssuer> trustedIssuers = TrustedIssuer.LoadAll(settings);

        DataDirectory data = DataDirectory.Open(settings.DataDirectory);
        var disposables = new Stack<IDisposable>();
        try
        {
            DirectoryLock directoryLock = data.Lock();
            disposables.Push(directoryLock);
            var telemetry = new ServerTelemetry();
            disposables.Push(telemetry);
            Store store = OpenStore(settings.Database, data, telemetry);
            disposables.Push(store);
            bool hasKeys = store.Prepare();

            MasterKeyRing masterKeys = MasterKeyProviders.Open(settings.MasterKey, data.MasterKeysPath, mayCreate: !hasKeys);
            disposables.Push(masterKeys);
            masterKeys.Telemetry = telemetry;
            TokenIssuer tokens = TokenIssuer.LoadOrCreate(data.SigningKeyPath, settings);
            disposables.Push(tokens);
            byte[] adminHash = data.LoadOrCreateAdminCredentialHash(out bool adminCreated);

            WebApplication app = Compose(settings, configureLogging, telemetry, directoryLock, store, masterKeys, tokens, adminHash, trustedIssuers);

            // From here on the container owns (and disposes) the meter, the lock, the master keys, the store and the token
            // key. It disposes in the reverse order of this resolution: the store (which still runs queued writes, some
            // of which wrap and unwrap) before the master keys, the meter and the directory lock last.
            disposables.Clear();
            foreach (Type owned in new[] { typeof(ServerTelemetry), typeof(DirectoryLock), typeof(MasterKeyRing), typeof(Store), typeof(TokenIssuer), typeof(KeyServer) })
            {
                app.Services.GetRequiredService(owned);
            }

            ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category);
            if (adminCreated)
            {
                ServerLog.AdminCredentialCreated(logger, data.AdminCredentialPath);
            }

            foreach (TrustedIssuer trusted in trustedIssuers)
            {
                ServerLog.TrustedIssuerConfigured(logger, trusted.Issuer, trusted.Keys.Count, trusted.JwksFile, trusted.AdminSubjects.Count);
            }

            ServerLog.Started(logger, data.Path, masterKeys.CurrentVersion, tokens.KeyId);
            return app;
        }
        catch
        {
            while (disposables.Count > 0)
            {
                disposables.Pop().Dispose();
            }

            throw;
        }
    }

    private static WebApplication Compose(ServerOptions settings, Action<ILoggingBuilder>? configureLogging, ServerTelemetry telemetry, DirectoryLock directoryLock, Store store, MasterKeyRing masterKeys, TokenIssuer tokens, byte[] adminHash, IReadOnlyList<TrustedIssuer> trustedIssuers)
    {
        WebApplicationBuilder builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(ServerHost).Assembly.GetName().Name,
            EnvironmentName = Environments.Production,
            ContentRootPath = AppContext.BaseDirectory,
        });

        // Only ServerOptions configure the server: no appsettings.json, environment variables or command line that
        // could add endpoints (Kestrel:Endpoints, ASPNETCORE_URLS) or change what was validated.
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection();
        builder.WebHost.UseUrls(settings.Urls);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = JsonBody.DrainLimit;
        });
        configureLogging?.Invoke(builder.Logging);

        IServiceCollection services = builder.Services;
        services.AddSingleton(settings);
        services.AddSingleton(_ => telemetry);
        services.AddSingleton(_ => directoryLock);
        services.AddSingleton(_ => store);
        services.AddSingleton(_ => masterKeys);
        services.AddSingleton(_ => tokens);
        services.AddSingleton(provider => new KeyServer(settings, store, masterKeys, tokens, adminHash, provider.GetService<ILoggerFactory>()?.CreateLogger(ServerLog.Category) ?? NullLogger.Instance));
        services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
            json.SerializerOptions.MaxDepth = 16;
            json.SerializerOptions.AllowDuplicateProperties = false;
        });
        services.AddProblemDetails(problems => problems.CustomizeProblemDetails = Problems.Customize);
        services.AddModelSealAuthentication(settings, tokens, trustedIssuers);
        services.AddModelSealRateLimits(settings);
        // Traces: the server's activity source and ASP.NET Core's, with no exporter (docs/deploy.md "Observability").
        // Metrics: only when the scrape endpoint is enabled.
        OpenTelemetry.OpenTelemetryBuilder openTelemetry = services.AddOpenTelemetry()
            .WithTracing(tracing => tracing.AddSource(ServerTelemetry.Name).AddAspNetCoreInstrumentation());
        if (settings.Metrics.Enabled)
        {
            openTelemetry.WithMetrics(metrics => metrics.AddMeter(ServerTelemetry.Name).AddAspNetCoreInstrumentation().AddPrometheusExporter());
        }

        services.AddOpenApi(openApi => openApi.AddDocumentTransformer<OpenApiSecurity>().AddOperationTransformer<OpenApiJsonBodies>());

        WebApplication app = builder.Build();
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = exception => exception switch
            {
                BadHttpRequestException bad => bad.StatusCode,
                DbException => StatusCodes.Status503ServiceUnavailable,
                _ => StatusCodes.Status500InternalServerError,
            },
        });
        app.UseStatusCodePages();
        app.Use(telemetry.ObserveReleaseAsync);
        app.Use(GuardAsync);
        app.UseRouting();
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();

        app.MapHealthApi();
        app.MapTokenApi();
        app.MapKeyReleaseApi();
        app.MapAdminApi();
        app.MapOpenApi("/openapi/{documentName}.json").AllowAnonymous();
        if (settings.Metrics.Enabled)
        {
            app.MapPrometheusScrapingEndpoint("/metrics").AllowAnonymous().ExcludeFromDescription();
        }

        return app;
    }

    /// <summary>
    /// Refuses a declared body over the limit before authentication or any handler sees it (bodies without a
    /// Content-Length are limited where they are read, <see cref="JsonBody"/>), and keeps answers out of caches.
    /// </summary>
    private static async Task GuardAsync(HttpContext context, RequestDelegate next)
    {
        context.Response.Headers.CacheControl = "no-store";
        if (context.Request.ContentLength is not > JsonBody.MaxBytes)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (context.Request.ContentLength <= JsonBody.DrainLimit)
        {
            await JsonBody.DrainAsync(context.Request, context.RequestAborted).ConfigureAwait(false);
        }
        else
        {
            context.Response.Headers.Connection = "close";
        }

        await Problems.WriteAsync(context, Problems.RequestTooLarge, $"The request body must be at most {JsonBody.MaxBytes} bytes.").ConfigureAwait(false);
    }

    internal static Store OpenStore(DatabaseOptions options, DataDirectory data, ServerTelemetry? telemetry)
    {
        if (options.Provider == DatabaseOptions.Postgres)
        {
            string connectionString = options.ConnectionString ?? Environment.GetEnvironmentVariable(options.ConnectionStringEnvironmentVariable!)!;
            return new PostgresStore(connectionString) { Telemetry = telemetry };
        }

        data.EnsureDatabaseFile();
        return new SqliteStore(data.DatabasePath) { Telemetry = telemetry };
    }
}
