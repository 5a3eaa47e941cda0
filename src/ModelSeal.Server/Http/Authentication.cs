using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Security;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Http;

/// <summary>
/// Bearer-token validation (docs/protocol.md section 1) and the two authorization policies. Every check is explicit:
/// issuer, audience, lifetime (30 s skew), signature by a known key named by <c>kid</c>, and an algorithm the key's
/// issuer may use (ES256 for the server's own key; for a trusted issuer's key — from its JWKS file or discovered from
/// its Authority — what the key allows among its configured algorithms). Each key validates only its own issuer's tokens, and each issuer's tokens carry one of that
/// issuer's audiences. Administrators are the server's own admin tokens and the trusted issuers' AdminSubjects; every
/// other external token gets at most the <c>keys</c> scope.
/// </summary>
internal static class Authentication
{
    public const string KeysPolicy = "keys";
    public const string AdminPolicy = "admin";

    public static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(30);

    /// <summary>Registers bearer authentication and the two policies.</summary>
    /// <param name="services">The server's services.</param>
    /// <param name="options">The (validated) options: the server's own issuer and audience, the clock.</param>
    /// <param name="trusted">The trusted external issuers, with their keys read.</param>
    public static void AddModelSealAuthentication(this IServiceCollection services, ServerOptions options, IReadOnlyList<TrustedIssuer> trusted)
    {
        // Each trusted issuer's administrators (none for the server's own issuer: its admin tokens are all administrators).
        var administrators = trusted.ToDictionary(external => external.Issuer, external => external.AdminSubjects, StringComparer.Ordinal);

        // The trusted issuers' keys; those discovered from an Authority are fetched while the server runs, and the server
        // is not ready until each has been fetched once (Readiness).
        var keys = new TrustedKeys(trusted);
        services.AddSingleton(_ => keys);
        services.AddSingleton<IReadinessCondition>(provider => provider.GetRequiredService<TrustedKeys>());
        services.AddHostedService<TrustedIssuerRefresh>();

        // The token key is created by the container (after the data directory is locked): bound when the options are first used.
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme).Configure<TokenIssuer, ILoggerFactory>((jwt, issuer, loggers) => ConfigureJwt(jwt, options, issuer, trusted, keys, loggers.CreateLogger(ServerLog.Category)));
        services.AddAuthorizationBuilder()
            .SetDefaultPolicy(new AuthorizationPolicyBuilder(JwtBearerDefaults.AuthenticationScheme).RequireAuthenticatedUser().Build())
            .AddPolicy(KeysPolicy, policy => policy.AddAuthenticationSchemes(JwtBearerDefaults.AuthenticationScheme).RequireAuthenticatedUser().RequireAssertion(c => HasScope(c.User, TokenClaims.ScopeKeys)))
            .AddPolicy(AdminPolicy, policy => policy.AddAuthenticationSchemes(JwtBearerDefaults.AuthenticationScheme).RequireAuthenticatedUser().RequireAssertion(c => IsAdministrator(c.User, options.Issuer, administrators)));
    }

    private static void ConfigureJwt(JwtBearerOptions jwt, ServerOptions options, TokenIssuer issuer, IReadOnlyList<TrustedIssuer> trusted, TrustedKeys keys, ILogger logger)
    {
        // Each issuer's audiences, and the algorithms any key may sign with (each key is then held to its own).
        var audiences = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal) { [options.Issuer] = [options.Audience] };
        foreach (TrustedIssuer external in trusted)
        {
            audiences[external.Issuer] = external.Audiences;
        }

        SecurityKey ownKey = issuer.SecurityKey;
        string[] validAlgorithms = trusted.SelectMany(t => t.Algorithms).Append(SecurityAlgorithms.EcdsaSha256).Distinct(StringComparer.Ordinal).ToArray();

        // The standard handler plus a cache of tokens it has already validated (only the lifetime is checked
        // again for those).
        jwt.TokenHandlers.Clear();
        jwt.TokenHandlers.Add(new CachingTokenHandler(options.Time, capacity: 65_536, keys) { MapInboundClaims = false, Logger = logger });
        jwt.MapInboundClaims = false;
        jwt.IncludeErrorDetails = false;
        jwt.SaveToken = false;
        jwt.RequireHttpsMetadata = true;
        jwt.TimeProvider = options.Time;
        jwt.TokenValidationParameters = new TokenValidationParameters
        {
            ValidateIssuer = true,
            ValidIssuers = audiences.Keys.ToArray(),
            ValidateAudience = true,
            ValidAudiences = audiences.Values.SelectMany(a => a).Distinct(StringComparer.Ordinal).ToArray(),
            AudienceValidator = (tokenAudiences, token, _) =>
                token is JsonWebToken jwtToken &&
                audiences.TryGetValue(jwtToken.Issuer, out IReadOnlyList<string>? accepted) &&
                tokenAudiences.Any(audience => accepted.Contains(audience, StringComparer.Ordinal)),
            RequireAudience = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            ClockSkew = ClockSkew,
            LifetimeValidator = (notBefore, expires, _, _) => IsWithinLifetime(options.Time, notBefore, expires),
            RequireSignedTokens = true,
            ValidateIssuerSigningKey = true,
            // The keys of the token's own issuer named by its kid: the server's token key, or a trusted issuer's (its
            // file's, or the last good set discovered from its Authority, which can change while the server runs).
            IssuerSigningKeyResolver = (_, token, kid, _) => IsOwnKey(token, kid, options.Issuer, ownKey) ? [ownKey] : keys.Resolve(token, kid),
            TryAllIssuerSigningKeys = false,
            ValidAlgorithms = validAlgorithms,
            IssuerSigningKeyValidator = (key, token, _) =>
                token is JsonWebToken jwtToken &&
                (ReferenceEquals(key, ownKey) ? IsOwnKey(jwtToken, jwtToken.Kid, options.Issuer, ownKey) && jwtToken.Alg == SecurityAlgorithms.EcdsaSha256 : keys.Allows(key, jwtToken)),
            NameClaimType = JwtRegisteredClaimNames.Sub,
            RoleClaimType = TokenClaims.Scope,
            ValidateTokenReplay = false,
        };
        jwt.Events = new JwtBearerEvents
        {
            OnTokenValidated = context =>
            {
                if (string.IsNullOrEmpty(context.Principal?.FindFirst(JwtRegisteredClaimNames.Sub)?.Value))
                {
                    context.Fail("The token has no 'sub' claim.");
                }
                else
                {
                    // The server's own admin tokens: only in the current admin epoch (every request, cached tokens too).
                    AdminEpochCheck.Apply(context, options.Issuer);
                }

                return Task.CompletedTask;
            },
            OnAuthenticationFailed = context =>
            {
                ServerLog.TokenRejected(Logger(context.HttpContext), context.Exception.GetType().Name);
                return Task.CompletedTask;
            },
            OnChallenge = async context =>
            {
                context.HandleResponse();
                bool presented = context.AuthenticateFailure is not null || context.Request.Headers.Authorization.Count > 0;
                context.Response.Headers.WWWAuthenticate = presented ? "Bearer error=\"invalid_token\"" : "Bearer";
                await Problems.WriteAsync(
                    context.HttpContext,
                    ProblemCodes.Unauthorized,
                    presented ? "The bearer token is not valid (signature, issuer, audience, lifetime or key)." : "A bearer token is required (Authorization: Bearer <token>).").ConfigureAwait(false);
            },
            OnForbidden = context => Problems.WriteAsync(context.HttpContext, ProblemCodes.Forbidden, "The token's scope does not allow this operation."),
        };

        // Each trusted issuer's own rules (TokenKind, TokenTypes, ClientIds, MaxLifetime), after the checks above.
        ExternalTokenRules.Register(jwt.Events, trusted);
    }

    /// <summary>True when <paramref name="token"/> claims the server's own issuer and names its token key.</summary>
    private static bool IsOwnKey(SecurityToken token, string? kid, string ownIssuer, SecurityKey ownKey) =>
        token is JsonWebToken jwtToken && string.Equals(kid, ownKey.KeyId, StringComparison.Ordinal) &&
        jwtToken.TryGetPayloadValue(JwtRegisteredClaimNames.Iss, out string? iss) && string.Equals(iss, ownIssuer, StringComparison.Ordinal);

    /// <summary>
    /// An administrator holds the <c>admin</c> scope and is either the server's own admin token (<c>iss</c> is the
    /// server's Issuer) or a subject on its trusted issuer's AdminSubjects. An external issuer's <c>admin</c> scope alone
    /// is not enough: whoever controls that issuer would otherwise administer every model.
    /// </summary>
    public static bool IsAdministrator(ClaimsPrincipal user, string ownIssuer, IReadOnlyDictionary<string, IReadOnlySet<string>> administrators)
    {
        if (!HasScope(user, TokenClaims.ScopeAdmin) || user.FindFirst(JwtRegisteredClaimNames.Iss)?.Value is not { } tokenIssuer)
        {
            return false;
        }

        return string.Equals(tokenIssuer, ownIssuer, StringComparison.Ordinal) ||
            (administrators.TryGetValue(tokenIssuer, out IReadOnlySet<string>? subjects) && user.FindFirst(JwtRegisteredClaimNames.Sub)?.Value is { } subject && subjects.Contains(subject));
    }

    /// <summary>
    /// <c>exp</c> required; <c>nbf</c> (when present) and <c>exp</c> checked against <paramref name="time"/> with
    /// <see cref="ClockSkew"/> either side (the options' clock, so that tests can move it).
    /// </summary>
    public static bool IsWithinLifetime(TimeProvider time, DateTime? notBefore, DateTime? expires)
    {
        if (expires is null)
        {
            return false;
        }

        DateTime now = time.GetUtcNow().UtcDateTime;
        DateTime expiresUtc = expires.Value.ToUniversalTime();
        DateTime? notBeforeUtc = notBefore?.ToUniversalTime();
        return (notBeforeUtc is null || (notBeforeUtc <= expiresUtc && notBeforeUtc <= now + ClockSkew)) && expiresUtc >= now - ClockSkew;
    }

    /// <summary>True when a space-separated <c>scope</c> claim of <paramref name="user"/> contains <paramref name="scope"/>.</summary>
    public static bool HasScope(ClaimsPrincipal user, string scope) =>
        user.FindAll(TokenClaims.Scope).Any(claim => claim.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(scope, StringComparer.Ordinal));

    /// <summary>The token's <c>sub</c> (present on every authenticated request).</summary>
    public static string Subject(ClaimsPrincipal user) =>
        user.FindFirst(JwtRegisteredClaimNames.Sub)?.Value ?? throw new InvalidOperationException("An authenticated request without a subject.");

    private static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(ServerLog.Category);
}

/// <summary>
/// A trusted external issuer (<see cref="TrustedIssuerOptions"/>) with its signing keys — read from its JWKS file (never
/// fetched), or discovered from its Authority (<see cref="IssuerDiscovery"/>) — its audiences and its administrators.
/// </summary>
internal sealed class TrustedIssuer
{
    private readonly IssuerKeySet? _fileKeys;

    private TrustedIssuer(string issuer, string? jwksFile, IssuerKeySet? fileKeys, IssuerDiscovery? discovery, IReadOnlyList<string> algorithms, IReadOnlyList<string> audiences, IReadOnlySet<string> adminSubjects, ExternalTokenRules rules)
    {
        Issuer = issuer;
        JwksFile = jwksFile;
        _fileKeys = fileKeys;
        Discovery = discovery;
        Algorithms = algorithms;
        Audiences = audiences;
        AdminSubjects = adminSubjects;
        Rules = rules;
    }

    public string Issuer { get; }

    /// <summary>The JWKS file the keys were read from, or null when they are discovered.</summary>
    public string? JwksFile { get; }

    /// <summary>The discovery of the keys from the Authority, or null when they come from a file.</summary>
    public IssuerDiscovery? Discovery { get; }

    /// <summary>The algorithms this issuer's tokens may use (its Algorithms, or all three).</summary>
    public IReadOnlyList<string> Algorithms { get; }

    public IReadOnlyList<string> Audiences { get; }

    public IReadOnlySet<string> AdminSubjects { get; }

    /// <summary>The keys in use: the file's, or the last good discovered set (null before the first successful fetch).</summary>
    public IssuerKeySet? Keys => _fileKeys ?? Discovery?.Current;

    /// <summary>The token kind, typ values and lifetime this issuer's tokens must have.</summary>
    public ExternalTokenRules Rules { get; }

    /// <summary>Every configured issuer (options already validated); JWKS files are read, authorities not yet asked.</summary>
    public static IReadOnlyList<TrustedIssuer> LoadAll(ServerOptions options) =>
        options.TrustedIssuers.Select((issuer, index) => Load(issuer, index, options.Audience, options.Time)).ToArray();

    /// <summary>
    /// The issuer of <paramref name="options"/>: with a JwksFile, its usable keys read now (<see cref="IssuerKeySet.From"/>);
    /// with an Authority, a discovery that fetches them once the server runs.
    /// </summary>
    /// <exception cref="ServerConfigurationException">The file is unreadable, not a JWKS, or has no usable key.</exception>
    public static TrustedIssuer Load(TrustedIssuerOptions options, int index, string defaultAudience, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<string> allowed = options.Algorithms.Count > 0 ? [.. options.Algorithms] : ServerOptionsValidator.IssuerAlgorithms;
        IReadOnlyList<string> audiences = ExternalTokenRules.Audiences(options, defaultAudience);
        var admins = new HashSet<string>(options.AdminSubjects, StringComparer.Ordinal);
        if (!string.IsNullOrWhiteSpace(options.Authority))
        {
            var discovery = new IssuerDiscovery(options.Issuer!, $"TrustedIssuers:{index}", new Uri(options.Authority), allowed, options.AutomaticRefreshInterval, options.MinimumRefreshInterval, time);
            return new TrustedIssuer(options.Issuer!, null, null, discovery, allowed, audiences, admins, ExternalTokenRules.From(options));
        }

        string key = $"TrustedIssuers:{index}:JwksFile";
        string jwksFile = options.JwksFile!;
        string json;
        try
        {
            json = File.ReadAllText(jwksFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServerConfigurationException($"The JWKS file '{jwksFile}' ({key}) could not be read: {e.Message}", e);
        }

        JsonWebKeySet set;
        try
        {
            set = new JsonWebKeySet(json);
        }
        catch (Exception e) when (e is ArgumentException or System.Text.Json.JsonException)
        {
            throw new ServerConfigurationException($"The JWKS file '{jwksFile}' ({key}) is not a JSON Web Key Set: {e.Message}", e);
        }

        IssuerKeySet keys = IssuerKeySet.From(set, allowed);
        return keys.Count > 0
            ? new TrustedIssuer(options.Issuer!, jwksFile, keys, null, allowed, audiences, admins, ExternalTokenRules.From(options))
            : throw new ServerConfigurationException($"The JWKS file '{jwksFile}' ({key}) has no public signing key usable with {string.Join(", ", allowed)} (each needs a 'kid', and RSA for RS256/PS256 or P-256 EC for ES256; TrustedIssuers:{index}:Algorithms limits them).");
    }

    /// <summary>Logs where this issuer's keys come from.</summary>
    public void LogConfigured(ILogger logger)
    {
        if (Discovery is { } discovery)
        {
            discovery.UseLogger(logger);
            ServerLog.TrustedIssuerDiscovered(logger, Issuer, discovery.MetadataAddress.AbsoluteUri, discovery.AutomaticRefreshInterval, discovery.MinimumRefreshInterval, AdminSubjects.Count);
        }
        else
        {
            ServerLog.TrustedIssuerConfigured(logger, Issuer, _fileKeys!.Count, JwksFile!, AdminSubjects.Count);
        }
    }
}
