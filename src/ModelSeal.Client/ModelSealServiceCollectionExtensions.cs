using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ModelSeal;
using ModelSeal.Client;
using Polly;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the ModelSeal client in a service collection (in this namespace by the .NET convention for DI extensions).</summary>
public static class ModelSealServiceCollectionExtensions
{
    /// <summary>The name of the key server's <see cref="HttpClient"/> (for <see cref="IHttpClientFactory"/>).</summary>
    public const string HttpClientName = "ModelSeal.KeyServer";

    /// <summary>
    /// Registers the client with options bound from <paramref name="configuration"/> (a section with the members of
    /// <see cref="ModelSealClientOptions"/>).
    /// </summary>
    public static IServiceCollection AddModelSeal(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<ModelSealClientOptions>().Bind(configuration);
        return AddCore(services);
    }

    /// <summary>Registers the client with options set by <paramref name="configure"/>.</summary>
    public static IServiceCollection AddModelSeal(this IServiceCollection services, Action<ModelSealClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<ModelSealClientOptions>().Configure(configure);
        return AddCore(services);
    }

    /// <summary>
    /// Makes the app's own sign-in the source of tokens (<see cref="SignInTokenSource"/>, docs/client.md "Signing in with
    /// the app's own identity provider"): each key request asks <paramref name="callback"/> for the signed-in user's
    /// current token. No licence credential is needed (leave <see cref="ModelSealClientOptions.LicenceId"/> and
    /// <see cref="ModelSealClientOptions.CredentialFile"/> unset: setting them too fails when the host starts). Call it
    /// before or after <c>AddModelSeal</c>.
    /// </summary>
    public static IServiceCollection AddModelSealSignIn(this IServiceCollection services, SignInTokenCallback callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        return AddModelSealSignIn(services, _ => callback);
    }

    /// <summary>
    /// As <see cref="AddModelSealSignIn(IServiceCollection, SignInTokenCallback)"/>, with a callback made from the app's
    /// services (for example one that uses the app's registered MSAL <c>IPublicClientApplication</c>).
    /// </summary>
    public static IServiceCollection AddModelSealSignIn(this IServiceCollection services, Func<IServiceProvider, SignInTokenCallback> callbackFactory)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(callbackFactory);
        services.TryAddSingleton(TimeProvider.System);
        services.Replace(ServiceDescriptor.Singleton(sp =>
        {
            ModelSealClientOptions options = sp.GetRequiredService<IOptions<ModelSealClientOptions>>().Value;
            SignInTokenCallback callback = callbackFactory(sp) ?? throw new InvalidOperationException("ModelSeal: the factory given to AddModelSealSignIn returned no callback.");
            return new SignInTokenSource(callback, sp.GetRequiredService<TimeProvider>(), options.TokenRefreshMargin, sp.GetService<ILogger<SignInTokenSource>>());
        }));
        services.Replace(ServiceDescriptor.Singleton<ITokenSource>(sp => sp.GetRequiredService<SignInTokenSource>()));
        services.TryAddSingleton<SignInRegistration>();
        return services;
    }

    /// <summary>
    /// Registers options (validated when the host starts), the key server's <see cref="HttpClient"/> with its
    /// resilience pipeline, the device key store, the lease cache, <see cref="ITokenSource"/> and
    /// <see cref="IModelKeySource"/> = <see cref="KeyServerKeySource"/>. Stores and sources registered before this
    /// call are kept (TryAdd), so an app can plug in its own (for example a platform device key store). An
    /// <see cref="IDeviceAttestation"/> registered (before or after) is used by the key source.
    /// </summary>
    private static IServiceCollection AddCore(IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ModelSealClientOptions>, ModelSealClientOptionsValidator>());
        services.AddOptions<ModelSealClientOptions>().ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);

        IHttpClientBuilder http = services.AddHttpClient(HttpClientName, (sp, client) =>
            {
                ModelSealClientOptions options = sp.GetRequiredService<IOptions<ModelSealClientOptions>>().Value;
                client.BaseAddress = options.ServerUri;
                client.Timeout = Timeout.InfiniteTimeSpan; // the resilience pipeline's total timeout governs
                client.MaxResponseContentBufferSize = 64 * 1024;
            });
        http.AddResilienceHandler("modelseal", ConfigureResilience);
        http.AddHttpMessageHandler(() => new AttemptCountingHandler()); // inside the resilience handler: sees every attempt

        services.TryAddSingleton<IDeviceKeyStore>(sp =>
        {
            ModelSealClientOptions options = sp.GetRequiredService<IOptions<ModelSealClientOptions>>().Value;
            return options.DeviceKeyFile is { Length: > 0 } file ? new FileDeviceKeyStore(file) : new InMemoryDeviceKeyStore();
        });
        services.TryAddSingleton<ILeaseCache>(sp =>
        {
            ModelSealClientOptions options = sp.GetRequiredService<IOptions<ModelSealClientOptions>>().Value;
            return options.LeaseCacheDirectory is { Length: > 0 } directory ? new FileLeaseCache(directory) : new InMemoryLeaseCache();
        });
        services.TryAddSingleton(sp =>
        {
            ModelSealClientOptions options = sp.GetRequiredService<IOptions<ModelSealClientOptions>>().Value;
            IHttpClientFactory factory = sp.GetRequiredService<IHttpClientFactory>();
            return new AnswerKeys(() => factory.CreateClient(HttpClientName), options.AnswerKeyId, options.LeaseCacheDirectory);
        });
        services.TryAddSingleton<ITokenSource>(sp =>
        {
            ModelSealClientOptions options = sp.GetRequiredService<IOptions<ModelSealClientOptions>>().Value;
            if (options.LicenceId is not { Length: > 0 } licenceId || options.CredentialFile is not { Length: > 0 } credentialFile)
            {
                throw new InvalidOperationException("ModelSeal: set LicenceId and CredentialFile, use the app's sign-in (AddModelSealSignIn), or register your own ITokenSource before AddModelSeal.");
            }

            IHttpClientFactory factory = sp.GetRequiredService<IHttpClientFactory>();
            return new LicenceCredentialTokenSource(
                () => factory.CreateClient(HttpClientName), licenceId, credentialFile, sp.GetRequiredService<TimeProvider>(), options.TokenRefreshMargin,
                sp.GetRequiredService<AnswerKeys>(), sp.GetService<ILogger<LicenceCredentialTokenSource>>());
        });
        services.TryAddSingleton(sp =>
        {
            IHttpClientFactory factory = sp.GetRequiredService<IHttpClientFactory>();
            return new KeyServerKeySource(
                () => factory.CreateClient(HttpClientName),
                sp.GetRequiredService<ITokenSource>(),
                sp.GetRequiredService<IDeviceKeyStore>(),
                sp.GetRequiredService<ILeaseCache>(),
                sp.GetRequiredService<AnswerKeys>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<ILogger<KeyServerKeySource>>(),
                sp.GetService<IDeviceAttestation>());
        });
        services.TryAddSingleton<IModelKeySource>(sp => sp.GetRequiredService<KeyServerKeySource>());
        return services;
    }

    /// <summary>
    /// Total timeout → retry (transport errors, 5xx, 408, 429; exponential backoff with jitter; Retry-After honoured
    /// but capped) → circuit breaker (429 not counted) → attempt timeout.
    /// </summary>
    private static void ConfigureResilience(ResiliencePipelineBuilder<HttpResponseMessage> builder, ResilienceHandlerContext context)
    {
        ModelSealClientOptions options = context.ServiceProvider.GetRequiredService<IOptions<ModelSealClientOptions>>().Value;
        TimeSpan cap = options.MaxRetryDelay;

        builder.AddTimeout(new HttpTimeoutStrategyOptions { Name = "total", Timeout = options.TotalTimeout });
        if (options.MaxRetryAttempts > 0) // Polly refuses a retry strategy with no retries: leave it out
        {
            builder.AddRetry(new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = options.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = cap,
                ShouldRetryAfterHeader = false,
                ShouldHandle = args => ValueTask.FromResult(HttpClientResiliencePredicates.IsTransient(args.Outcome)),
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Result, context.ServiceProvider.GetService<TimeProvider>() ?? TimeProvider.System, cap)),
            });
        }

        builder.AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
        {
            SamplingDuration = options.SamplingDuration,
            FailureRatio = 0.5,
            MinimumThroughput = 10,
            BreakDuration = options.CircuitBreakDuration,
            ShouldHandle = args => ValueTask.FromResult(
                args.Outcome.Result?.StatusCode != HttpStatusCode.TooManyRequests && HttpClientResiliencePredicates.IsTransient(args.Outcome)),
        });
        builder.AddTimeout(new HttpTimeoutStrategyOptions { Name = "attempt", Timeout = options.AttemptTimeout });
    }

    /// <summary>The server's Retry-After, capped; null (the backoff decides) when there is none.</summary>
    internal static TimeSpan? RetryAfter(HttpResponseMessage? response, TimeProvider time, TimeSpan cap)
    {
        if (response?.Headers.RetryAfter is not { } retryAfter)
        {
            return null;
        }

        TimeSpan? wait = retryAfter.Delta ?? (retryAfter.Date is { } date ? date - time.GetUtcNow() : null);
        if (wait is not { } w)
        {
            return null;
        }

        return w < TimeSpan.Zero ? TimeSpan.Zero : (w > cap ? cap : w);
    }
}
