using System.Data.Common;
using System.Net;
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
using ModelSeal.Server.Domain;
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
        Validate(settings);
        OidcKeys? oidc = settings.OidcAuthority is null ? null : OidcKeys.Load(settings.OidcAuthority, settings.OidcJwksFile!);
        DataDirectory data = DataDirectory.Open(settings.DataDirectory);
        WebApplication app = Compose(settings, configureLogging, data, oidc);
        try
        {
            // The container creates and owns (and disposes, in the reverse order) the directory lock, the meter, the
            // store, the master keys and the token key: created here, in this order, so that a start-up failure
            // disposes exactly what was created. The domain services are created at their first use.
            foreach (Type owned in new[] { typeof(DirectoryLock), typeof(ServerTelemetry), typeof(Store), typeof(MasterKeyRing), typeof(TokenIssuer), typeof(AdminCredential) })
            {
                app.Services.GetRequiredService(owned);
            }

            // The store runs its queued writes (some wrap and unwrap) before the master keys go: when the server has
            // stopped taking requests, not when the container disposes.
            Store store = app.Services.GetRequiredService<Store>();
            app.Lifetime.ApplicationStopped.Register(store.Dispose);

            ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category);
            if (oidc is not null)
            {
                ServerLog.OidcConfigured(logger, oidc.Authority, oidc.Keys.Count, settings.OidcJwksFile!);
            }

            ServerLog.Started(logger, data.Path, app.Services.GetRequiredService<MasterKeyRing>().CurrentVersion, app.Services.GetRequiredService<TokenIssuer>().KeyId);
            return app;
        }
        catch
        {
            ((IDisposable)app).Dispose();
            throw;
        }
    }

    private static WebApplication Compose(ServerOptions settings, Action<ILoggingBuilder>? configureLogging, DataDirectory data, OidcKeys? oidc)
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
        services.AddSingleton(data);
        services.AddSingleton(_ => data.Lock());
        services.AddSingleton<ServerTelemetry>();
        services.AddSingleton(provider => OpenStore(settings.Database, data, provider.GetRequiredService<ServerTelemetry>(), prepare: true));
        services.AddSingleton(provider =>
        {
            bool hasKeys = provider.GetRequiredService<Store>().Read(s => s.Models.HasWrappedKeys());
            MasterKeyRing ring = MasterKeyProviders.Open(settings.MasterKey, data.MasterKeysPath, mayCreate: !hasKeys);
            ring.Telemetry = provider.GetRequiredService<ServerTelemetry>();
            return ring;
        });
        services.AddSingleton(_ => TokenIssuer.LoadOrCreate(data.SigningKeyPath, settings));
        services.AddSingleton(provider =>
        {
            byte[] hash = data.LoadOrCreateAdminCredentialHash(out bool created);
            if (created)
            {
                ServerLog.AdminCredentialCreated(provider.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category), data.AdminCredentialPath);
            }

            return new AdminCredential(hash);
        });
        services.AddSingleton(new Clock(settings.Time));
        services.AddSingleton(new DeviceKeyCache(65_536));
        services.AddSingleton<AuditTrail>();
        services.AddSingleton<KeyReleases>();
        services.AddSingleton<ModelCatalogue>();
        services.AddSingleton<Licences>();
        services.AddSingleton<TokenGrants>();
        services.AddSingleton<MasterKeyRotation>();
        services.AddSingleton<Readiness>();
        services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
            json.SerializerOptions.MaxDepth = 16;
            json.SerializerOptions.AllowDuplicateProperties = false;
        });
        services.AddProblemDetails(problems => problems.CustomizeProblemDetails = Problems.Customize);
        services.AddModelSealAuthentication(settings, oidc);
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
        app.Use(ReleaseObserver.ObserveAsync);
        app.Use(GuardAsync);
        app.UseRouting();
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();

        app.MapHealthApi();
        app.MapJwksApi();
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

    internal static void ValidateDatabase(DatabaseOptions? options)
    {
        if (options is null)
        {
            throw new ServerConfigurationException("ServerOptions.Database must not be null.");
        }

        if (options.Provider is not (DatabaseOptions.Sqlite or DatabaseOptions.Postgres))
        {
            throw new ServerConfigurationException($"Unknown database provider '{options.Provider}'; use '{DatabaseOptions.Sqlite}' (default, one instance) or '{DatabaseOptions.Postgres}'.");
        }

        bool hasString = !string.IsNullOrWhiteSpace(options.ConnectionString);
        bool hasVariable = !string.IsNullOrWhiteSpace(options.ConnectionStringEnvironmentVariable);
        if (options.Provider == DatabaseOptions.Sqlite && (hasString || hasVariable))
        {
            throw new ServerConfigurationException($"A database connection string is configured but the provider is '{DatabaseOptions.Sqlite}', which keeps modelseal.db in the data directory; set Database:Provider to '{DatabaseOptions.Postgres}' or remove the connection string.");
        }

        if (options.Provider == DatabaseOptions.Postgres && hasString == hasVariable)
        {
            throw new ServerConfigurationException("The PostgreSQL store needs exactly one of Database:ConnectionString (password from PGPASSWORD or PGPASSFILE) and Database:ConnectionStringEnvironmentVariable (modelseal serve --database postgres --connection-string-env VAR).");
        }

        if (hasVariable && string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(options.ConnectionStringEnvironmentVariable!)))
        {
            throw new ServerConfigurationException($"The environment variable '{options.ConnectionStringEnvironmentVariable}' (Database:ConnectionStringEnvironmentVariable) is not set or empty; set it to the PostgreSQL connection string.");
        }
    }

    internal static void Validate(ServerOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            throw new ServerConfigurationException("No data directory is configured; set ServerOptions.DataDirectory (modelseal serve --data DIR).");
        }

        if (string.IsNullOrWhiteSpace(options.Urls))
        {
            throw new ServerConfigurationException("No listen address is configured; set ServerOptions.Urls, e.g. http://127.0.0.1:5380.");
        }

        foreach (string url in options.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            ValidateUrl(url, options.AllowNonLoopbackHttp);
        }

        if (string.IsNullOrWhiteSpace(options.Issuer) || string.IsNullOrWhiteSpace(options.Audience))
        {
            throw new ServerConfigurationException("The token issuer and audience must not be empty.");
        }

        if (options.LeaseDuration <= TimeSpan.Zero || options.LeaseDuration > TimeSpan.FromDays(366))
        {
            throw new ServerConfigurationException("The lease duration must be positive and at most 366 days.");
        }

        if (options.TokenLifetime < TimeSpan.FromSeconds(1) || options.TokenLifetime > TimeSpan.FromDays(1))
        {
            throw new ServerConfigurationException("The token lifetime must be between 1 second and 1 day.");
        }

        if (options.ReleasesPerMinutePerSubject < 1 || options.RequestsPerMinutePerClient < 1)
        {
            throw new ServerConfigurationException("The rate limits must be at least 1 per minute.");
        }

        if (options.Time is null)
        {
            throw new ServerConfigurationException("ServerOptions.Time must not be null (use TimeProvider.System).");
        }

        MasterKeyProviders.Validate(options.MasterKey);
        ValidateDatabase(options.Database);

        if (options.Metrics is null)
        {
            throw new ServerConfigurationException("ServerOptions.Metrics must not be null.");
        }

        if (options.OidcAuthority is not null || options.OidcJwksFile is not null)
        {
            if (string.IsNullOrWhiteSpace(options.OidcAuthority))
            {
                throw new ServerConfigurationException("An OIDC JWKS file is configured without an OIDC authority; set both or neither.");
            }

            if (string.IsNullOrWhiteSpace(options.OidcJwksFile))
            {
                throw new ServerConfigurationException($"The OIDC authority '{options.OidcAuthority}' has no JWKS file; the server never fetches keys over the network, so give its signing keys as a JWKS file (ServerOptions.OidcJwksFile).");
            }

            if (string.Equals(options.OidcAuthority, options.Issuer, StringComparison.Ordinal))
            {
                throw new ServerConfigurationException("The OIDC authority must differ from the server's own issuer.");
            }
        }
    }

    private static void ValidateUrl(string url, bool allowNonLoopbackHttp)
    {
        BindingAddress address;
        try
        {
            address = BindingAddress.Parse(url);
        }
        catch (FormatException e)
        {
            throw new ServerConfigurationException($"The listen address '{url}' is not a URL like http://127.0.0.1:5380.", e);
        }

        bool https = string.Equals(address.Scheme, "https", StringComparison.OrdinalIgnoreCase);
        if (!https && !string.Equals(address.Scheme, "http", StringComparison.OrdinalIgnoreCase))
        {
            throw new ServerConfigurationException($"The listen address '{url}' must start with http:// or https://.");
        }

        bool loopback = address.IsUnixPipe ||
            string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase) ||
            (IPAddress.TryParse(address.Host.Trim('[', ']'), out IPAddress? ip) && IPAddress.IsLoopback(ip));
        if (!https && !loopback && !allowNonLoopbackHttp)
        {
            throw new ServerConfigurationException($"Refusing plain HTTP on the non-loopback address '{url}': keys and tokens would cross the network unencrypted. Listen on 127.0.0.1 behind a TLS-terminating proxy, use https://, or set AllowNonLoopbackHttp if TLS is terminated in front of this address.");
        }
    }
}
