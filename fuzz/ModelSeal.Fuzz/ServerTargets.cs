using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Endpoints;
using ModelSeal.Protocol;
using ModelSeal.Server.Http;

namespace ModelSeal.Fuzz;

/// <summary>
/// Harnesses of the key server's request bodies, without a web server: the input is the body of a request given to
/// <see cref="JsonBody.ReadAsync{T}"/> exactly as the endpoints do (a <see cref="DefaultHttpContext"/> with the
/// server's JSON options), then the endpoint's own validation and the decoding of the keys it carries. Nothing here
/// documents an exception: every answer to a bad body is a problem result, so any exception is a crash.
/// </summary>
/// <remarks>
/// The endpoints' validators are internal and called directly. The JSON options repeat ServerHost's
/// ConfigureHttpJsonOptions.
/// </remarks>
internal static class ServerTargets
{
    private static readonly IServiceProvider Services = new ServiceCollection()
        .ConfigureHttpJsonOptions(json =>
        {
            // As ServerHost.ConfigureServices.
            json.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.Never;
            json.SerializerOptions.MaxDepth = 16;
            json.SerializerOptions.AllowDuplicateProperties = false;
        })
        .BuildServiceProvider();

    private static readonly ServerOptions Options = new() { DataDirectory = "unused", TrustedIssuers = [new TrustedIssuerOptions { Issuer = "https://issuer.example/", JwksFile = "unused" }] };
    private static readonly Func<TokenRequest, ProblemHttpResult?> ValidateToken = TokenApi.Validate;
    private static readonly Func<ReleaseRequest, ProblemHttpResult?> ValidateRelease = KeyReleaseApi.Validate;
    private static readonly Func<CreateVersionRequest, ProblemHttpResult?> ValidateVersion = AdminApi.ValidateVersion;

    /// <summary>The bodies on the key-release path: <c>POST /v1/token</c> and <c>POST /v1/keys/release</c>.</summary>
    public static void ReleaseJson(byte[] data)
    {
        if (Read<TokenRequest>(data) is { } token)
        {
            _ = ValidateToken(token);
        }

        if (Read<ReleaseRequest>(data) is { } release && ValidateRelease(release) is null)
        {
            PublicKey(Callers.DecodeBase64Url(release.DevicePublicKey));
        }
    }

    /// <summary>The admin bodies: models, versions, licences.</summary>
    public static void AdminJson(byte[] data)
    {
        if (Read<CreateModelRequest>(data) is { } model)
        {
            _ = Identifier.IsValid(model.ModelId, Identifier.MaxIdLength);
        }

        if (Read<CreateVersionRequest>(data) is { } version && ValidateVersion(version) is null)
        {
            PublicKey(Callers.DecodeBase64Url(version.PublisherPublicKey));
        }

        if (Read<CreateLicenceRequest>(data) is { } licence)
        {
            _ = LicenceRequests.Validate(licence, Options);
        }
    }

    private static T? Read<T>(byte[] body)
        where T : class
    {
        var http = new DefaultHttpContext { RequestServices = Services };
        http.Request.Method = HttpMethods.Post;
        http.Request.ContentType = "application/json";
        http.Request.Body = new MemoryStream(body, writable: false);
        (T? value, ProblemHttpResult? problem) = JsonBody.ReadAsync<T>(http.Request, CancellationToken.None).GetAwaiter().GetResult();
        return (value is null) == (problem is null)
            ? throw new InvalidOperationException("JsonBody.ReadAsync returned neither or both of a value and a problem.")
            : value;
    }

    /// <summary>What the domain does with a decoded device or publisher key: thumbprint, then import (documented: ModelKeyException).</summary>
    private static void PublicKey(byte[]? key)
    {
        if (key is null)
        {
            return;
        }

        _ = HpkePublicKey.ThumbprintOf(key);
        try
        {
            _ = HpkePublicKey.Import(key);
        }
        catch (ModelKeyException e)
        {
            Outcome.Caught(e);
        }
    }
}
