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
using Microsoft.Net.Http.Headers;
using Microsoft.Extensions.Logging.Abstractions;
using ModelSeal.Server.Attestation;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Endpoints;
using ModelSeal.Server.Files;
using ModelSeal.Server.Http;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using ModelSeal.Protocol;

namespace ModelSeal.Server;

/// <summary>Builds the key server (docs/protocol.md) as a <see cref="WebApplication"/> ready to start.</summary>
public static class ServerHost
{
    /// <summary>
    /// The <c>kid</c> of the built server's answer key (docs/protocol.md section 2.2): what clients pin as
    /// <c>AnswerKeyId</c>, <c>MODELSEAL_ANSWER_KEY</c> or <c>ModelSealAnswerKey</c>.
    /// </summary>
    /// <param name="app">A server built by <see cref="Build"/>.</param>
    public static string AnswerKeyId(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.Services.GetRequiredService<SigningKeys>().Answer.KeyId;
    }

    /// <summary>
    /// Validates <paramref name="options"/> and the data directory (creating it, the database, the master key, the
    /// signing keys at first start — in the PKCS#11 token when the master keys are there — and the admin credential,
    /// written to AdminCredentialOut) and builds the server. Start it with
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
        if (settings.Entitlements.File is { } ruleFile)
        {
            // A bad rule file refuses the start before anything is created (EntitlementRuleSet reads it again and watches it).
            EntitlementRules.Parse(ServerConfiguration.LoadRuleFile(ruleFile), $"'{ruleFile}' Rules", settings.TrustedIssuers, settings.Attestation.Policies.Keys);
        }

        // The attestation roots, status list and policies: a file that cannot be read refuses the start here too.
        AttestationTrust attestationTrust = AttestationTrust.Load(settings.Attestation);
        DataDirectory data = DataDirectory.Open(settings.DataDirectory);
        WebApplication app = Compose(settings, configureLogging, data, trustedIssuers, attestationTrust);
        try
        {
            // The container creates and owns (and disposes, in the reverse order) the directory lock, the meter, the
            // store, the master keys and the token key: created here, in this order, so that a start-up failure
            // disposes exactly what was created. The domain services are created at their first use.
            foreach (Type owned in new[] { typeof(DirectoryLock), typeof(ServerTelemetry), typeof(Store), typeof(MasterKeyRing), typeof(SigningKeys), typeof(TokenIssuer), typeof(AdminCredential), typeof(EntitlementRuleSet) })
            {
                app.Services.GetRequiredService(owned);
            }

            // The store runs its queued writes (some wrap and unwrap) before the master keys go: when the server has
            // stopped taking requests, not when the container disposes.
            Store store = app.Services.GetRequiredService<Store>();
            app.Lifetime.ApplicationStopped.Register(store.Dispose);

            ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category);
            foreach (TrustedIssuer trusted in trustedIssuers)
            {
                trusted.LogConfigured(logger);
            }

            ServerLog.Started(logger, data.Path, app.Services.GetRequiredService<MasterKeyRing>().CurrentVersion, app.Services.GetRequiredService<TokenIssuer>().KeyId, AnswerKeyId(app));
            return app;
        }
        catch
        {
            ((IDisposable)app).Dispose();
            throw;
        }
    }

    private static WebApplication Compose(ServerOptions settings, Action<ILoggingBuilder>? configureLogging, DataDirectory data, IReadOnlyList<TrustedIssuer> trustedIssuers, AttestationTrust attestationTrust)
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
            RequestLimits.ConfigureKestrel(kestrel.Limits);
        });
        configureLogging?.Invoke(builder.Logging);

        IServiceCollection services = builder.Services;
        services.AddSingleton(settings);
        services.AddSingleton(data);
        services.AddSingleton(_ => data.Lock());
        services.AddSingleton<ServerTelemetry>();
        services.AddSingleton(provider => OpenStore(settings.Database, data, provider.GetRequiredService<ServerTelemetry>(), prepare: true));
        services.AddSingleton(provider =>
        {
            // The version the database records wraps (recorded now when none is: first start, or an older server's database).
            ILogger logger = provider.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category);
            MasterKeyRing ring = MasterKeyVersions.Open(settings.MasterKey, data.MasterKeysPath, provider.GetRequiredService<Store>(), settings.Time.GetUtcNow(), logger);
            ring.Telemetry = provider.GetRequiredService<ServerTelemetry>();
            return ring;
        });
        services.AddSingleton(provider => SigningKeys.Open(settings, data, provider.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category)));
        services.AddSingleton<TokenIssuer>();
        services.AddSingleton<AnswerSigning>();
        services.AddSingleton(provider =>
        {
            // The admin credential lives in the database (its hash and epoch); at first start it is written to AdminCredentialOut.
            Store store = provider.GetRequiredService<Store>();
            AdminCredential.Establish(store, data, settings, provider.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category));
            return new AdminCredential(store);
        });
        services.AddSingleton(new Clock(settings.Time));
        services.AddSingleton(new DeviceKeyCache(65_536));
        services.AddSingleton<AuditTrail>();
        services.AddHostedService(provider => provider.GetRequiredService<AuditTrail>());
        services.AddSingleton(attestationTrust);
        services.AddSingleton<DeviceAttestations>();
        services.AddHostedService(provider => provider.GetRequiredService<DeviceAttestations>());
        services.AddSingleton<KeyReleases>();
        services.AddSingleton<ModelCatalogue>();
        services.AddSingleton<Licences>();
        services.AddSingleton<EntitlementRuleSet>();
        services.AddSingleton<Users>();
        services.AddSingleton<UsageSummary>();
        services.AddSingleton<TokenGrants>();
        services.AddSingleton<MasterKeyRotation>();
        services.AddSingleton<Readiness>();
        services.ConfigureHttpJsonOptions(json =>
        {
            // The protocol's bodies come from the shared source-generated context; anything else (ProblemDetails) by reflection.
            json.SerializerOptions.TypeInfoResolverChain.Insert(0, ProtocolJson.Default);
            json.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
            // Exactly the protocol (docs/protocol.md section 7): member names as written, numbers as JSON numbers.
            json.SerializerOptions.PropertyNameCaseInsensitive = false;
            json.SerializerOptions.NumberHandling = JsonNumberHandling.Strict;
            json.SerializerOptions.MaxDepth = 16;
            json.SerializerOptions.AllowDuplicateProperties = false;
        });
        services.AddProblemDetails(problems => problems.CustomizeProblemDetails = Problems.Customize);
        services.AddModelSealAuthentication(settings, trustedIssuers);
        services.AddModelSealRateLimits(settings);
        // Traces: the server's activity source, created only while a listener subscribes (docs/deploy.md "Observability").
        // Metrics: only when the scrape endpoint is enabled.
        if (settings.Metrics.Enabled)
        {
            services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(ServerTelemetry.Name).AddAspNetCoreInstrumentation().AddPrometheusExporter());
        }

        services.AddOpenApi(openApi => openApi.AddDocumentTransformer<OpenApiSecurity>().AddOperationTransformer<OpenApiJsonBodies>());

        WebApplication app = builder.Build();

        // The client address (docs/deploy.md "Behind a TLS-terminating proxy"): X-Forwarded-For only from a trusted proxy.
        if (settings.TrustedProxies.Count > 0)
        {
            app.UseForwardedHeaders(ClientAddresses.ForwardedHeaders(settings.TrustedProxies));
        }

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
        app.Use(ReleaseObserver.ObserveAsync);
        app.Use(GuardAsync);
        // Per client address before the token is looked at (docs/protocol.md section 6.2); per subject after it.
        app.UseMiddleware<RateLimits.ClientRateLimit>();
        app.UseRouting();
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();

        app.MapHealthApi();
        app.MapJwksApi();
        app.MapTokenApi();
        app.MapKeyReleaseApi();
        app.MapAttestationApi();
        app.MapAdminApi();
        app.MapUserAdminApi();
        app.MapOpenApi("/openapi/{documentName}.json").AllowAnonymous();
        if (settings.Metrics.Enabled)
        {
            app.MapPrometheusScrapingEndpoint("/metrics").AllowAnonymous().ExcludeFromDescription();
        }

        return app;
    }

    /// <summary>
    /// Refuses a request target or header fields over the limits (<see cref="RequestLimits"/>) and a declared body over
    /// the limit before routing, authentication or any handler sees it (bodies without a Content-Length are limited
    /// where they are read, <see cref="JsonBody"/>), keeps answers out of caches (the JWKS answer sets its own), and
    /// gives every 401 a <c>WWW-Authenticate</c>.
    /// </summary>
    private static async Task GuardAsync(HttpContext context, RequestDelegate next)
    {
        context.Response.Headers.CacheControl = "no-store";

        // Every 401 says how to authenticate (RFC 9110 section 11.6.1): the bearer challenge sets its own; the token
        // endpoint's refusal of a credential gets the scheme of docs/protocol.md section 1.
        context.Response.OnStarting(() =>
        {
            if (context.Response.StatusCode == StatusCodes.Status401Unauthorized && !context.Response.Headers.ContainsKey(HeaderNames.WWWAuthenticate))
            {
                context.Response.Headers.WWWAuthenticate = "ModelSeal-Credential realm=\"modelseal\"";
            }

            return Task.CompletedTask;
        });
        if (RequestLimits.Exceeded(context) is { } exceeded)
        {
            await Problems.WriteAsync(context, exceeded.Code, exceeded.Detail).ConfigureAwait(false);
            return;
        }

        int limit = JsonBody.LimitFor(context.Request.Path);
        if (context.Request.ContentLength is not > JsonBody.MaxBytes || context.Request.ContentLength <= limit)
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

        await Problems.WriteAsync(context, ProblemCodes.RequestTooLarge, $"The request body must be at most {limit} bytes.").ConfigureAwait(false);
    }

    /// <summary>Opens the configured store; with <paramref name="prepare"/> also creates or migrates its schema (disposing it if that fails).</summary>
    internal static Store OpenStore(DatabaseOptions options, DataDirectory data, ServerTelemetry? telemetry, bool prepare = false)
    {
        Store store;
        if (options.Provider == DatabaseOptions.Postgres)
        {
            string connectionString = options.ConnectionString ?? Environment.GetEnvironmentVariable(options.ConnectionStringEnvironmentVariable!)!;
            store = new PostgresStore(connectionString) { Telemetry = telemetry };
        }
        else
        {
            data.EnsureDatabaseFile();
            store = new SqliteStore(data.DatabasePath) { Telemetry = telemetry };
        }

        try
        {
            if (prepare)
            {
                store.Prepare();
            }

            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }
}
