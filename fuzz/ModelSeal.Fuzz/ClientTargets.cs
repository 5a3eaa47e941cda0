using System.Text;
using ModelSeal.Client;

namespace ModelSeal.Fuzz;

/// <summary>
/// Harnesses of the client's file parsers, through the public API: the licence credential file (read by
/// <see cref="LicenceCredentialTokenSource"/> at each token exchange) and the offline lease files of
/// <see cref="FileLeaseCache"/> (read, then opened by <see cref="KeyServerKeySource"/> when the server is unreachable).
/// The HTTP side is a handler in this process: no network.
/// </summary>
internal static class ClientTargets
{
    private static readonly Lazy<string> CredentialPath = new(() => Path.Combine(Fixtures.ScratchDirectory("credential"), "credential"));
    private static readonly Lazy<LeaseFixture> Leases = new(LeaseFixture.Create);

    /// <summary>
    /// The credential file: read, trimmed and sent in <c>POST /v1/token</c> to a handler that answers with a token.
    /// Documented: <see cref="ModelKeyUnavailableException"/> (no token), <see cref="InvalidOperationException"/>
    /// (file too large or accessible by others).
    /// </summary>
    public static void Credential(byte[] data)
    {
        Fixtures.WriteOwnerOnly(CredentialPath.Value, data);
        using var client = new HttpClient(new TokenServer()) { BaseAddress = new Uri("http://127.0.0.1:9/") };
        using var tokens = new LicenceCredentialTokenSource(client, "lic_fuzz", CredentialPath.Value);
        try
        {
            AccessToken token = tokens.GetTokenAsync().AsTask().GetAwaiter().GetResult();
            if (token.Subject != Fixtures.Subject)
            {
                throw new InvalidOperationException($"Unexpected subject '{token.Subject}'.");
            }
        }
        catch (ModelKeyUnavailableException e)
        {
            Outcome.Caught(e);
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("The licence credential file", StringComparison.Ordinal))
        {
            Outcome.Caught(e);
        }
    }

    /// <summary>
    /// A lease file, as <see cref="KeyServerKeySource"/> reads it when the key server cannot be reached: a file
    /// that is not a usable lease means no key (<see cref="ModelKeyUnavailableException"/>), never another exception.
    /// </summary>
    public static void Lease(byte[] data)
    {
        LeaseFixture leases = Leases.Value;
        Fixtures.WriteOwnerOnly(leases.LeasePath, data);
        try
        {
            using ModelKey key = leases.Source.GetKeyAsync(leases.Header).AsTask().GetAwaiter().GetResult();
            if (key.KeyId != Fixtures.KeyId)
            {
                throw new InvalidOperationException($"A lease opened to key '{key.KeyId}'.");
            }
        }
        catch (ModelKeyUnavailableException e)
        {
            Outcome.Caught(e);
        }
    }

    /// <summary>A header of the fixed model, a key source whose server is unreachable, and the lease file it reads.</summary>
    private sealed record LeaseFixture(KeyServerKeySource Source, SealedModelHeader Header, string LeasePath)
    {
        public static LeaseFixture Create()
        {
            string directory = Fixtures.ScratchDirectory("lease");
            var cache = new FileLeaseCache(Path.Combine(directory, "leases"));
            var lease = new ModelLease(Fixtures.ModelId, Fixtures.Version, Fixtures.KeyId, Fixtures.Subject, "AA", "AA", Fixtures.LeaseExpiresAt);
            cache.StoreAsync(lease).AsTask().GetAwaiter().GetResult();
            string path = Directory.GetFiles(cache.Directory, "*.lease.json").Single();
            SealedModelHeader header = SealedModelHeader.Create(Fixtures.ModelId, Fixtures.Version, Fixtures.KeyId, ModelContentType.Unknown, 0, null);
            var client = new HttpClient(new UnreachableServer()) { BaseAddress = new Uri("http://127.0.0.1:9/") };
            var source = new KeyServerKeySource(client, new FixedTokens(), new InMemoryDeviceKeyStore(Fixtures.DeviceKey()), cache, new FixedClock());
            return new LeaseFixture(source, header, path);
        }
    }

    private sealed class UnreachableServer : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            throw new HttpRequestException(HttpRequestError.ConnectionError, "unreachable (fuzz harness)");
    }

    private sealed class TokenServer : HttpMessageHandler
    {
        private static readonly string Jwt = $"e30.{Convert.ToBase64String(Encoding.UTF8.GetBytes($"{{\"sub\":\"{Fixtures.Subject}\"}}")).TrimEnd('=')}.c2ln";

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            // The body must be the JSON the client meant to send: read it as the server would.
            string body = request.Content is null ? string.Empty : await request.Content.ReadAsStringAsync(cancellationToken);
            using var document = System.Text.Json.JsonDocument.Parse(body);
            _ = document.RootElement.GetProperty("credential").GetString();
            return new HttpResponseMessage(System.Net.HttpStatusCode.OK)
            {
                Content = new StringContent($"{{\"accessToken\":\"{Jwt}\",\"tokenType\":\"Bearer\",\"expiresIn\":900}}", Encoding.UTF8, "application/json"),
            };
        }
    }

    private sealed class FixedTokens : ITokenSource
    {
        public ValueTask<AccessToken> GetTokenAsync(CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(new AccessToken("e30.e30.c2ln", Fixtures.Subject, DateTimeOffset.MaxValue));
    }

    private sealed class FixedClock : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => Fixtures.Now;
    }
}
