using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ModelSeal.Protocol;

namespace ModelSeal.Client;

/// <summary>
/// The key server's answer key, which signs every key answer and key refusal (docs/protocol.md section 2.2). Pinned by
/// <see cref="ModelSealClientOptions.AnswerKeyId"/>, or learned once from the server's JWKS over HTTPS or loopback and
/// then kept (in <see cref="ModelSealClientOptions.LeaseCacheDirectory"/> when there is one), so that every later
/// answer must come from the same key. The public key itself is fetched from the JWKS and checked against the
/// <c>kid</c> (its SHA-256 thumbprint), so a pinned <c>kid</c> pins the key.
/// </summary>
internal sealed class AnswerKeys : IDisposable
{
    /// <summary>The file, in the lease directory, that keeps a learned answer key's <c>kid</c>.</summary>
    public const string LearnedFileName = "answer-key.kid";

    private readonly Func<HttpClient> _client;
    private readonly string? _learnedFile;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private string? _pinned;
    private AnswerKey? _key;

    public AnswerKeys(Func<HttpClient> client, string? pinnedKeyId, string? leaseDirectory)
    {
        _client = client;
        _pinned = string.IsNullOrWhiteSpace(pinnedKeyId) ? null : pinnedKeyId.Trim();
        _learnedFile = leaseDirectory is { Length: > 0 } ? Path.Combine(leaseDirectory, LearnedFileName) : null;
    }

    /// <summary>The answer key to verify with.</summary>
    /// <exception cref="ModelKeyUnavailableException">ServerUnavailable: the JWKS could not be read, or has no such key.</exception>
    public async Task<AnswerKey> GetAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _key) is { } known)
        {
            return known;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_key is { } again)
            {
                return again;
            }

            _pinned ??= ReadLearned();
            Uri server = _client().BaseAddress ?? throw new InvalidOperationException("The key server's HttpClient has no BaseAddress.");
            if (_pinned is null && server.Scheme == Uri.UriSchemeHttp && !server.IsLoopback)
            {
                throw new ModelKeyUnavailableException(
                    ModelKeyUnavailableReason.InvalidResponse,
                    "The key server is reached over plain HTTP, so its answer key cannot be learned safely. Set AnswerKeyId to the kid of the server's answer key (logged by the server at start; the JWKS key with \"purpose\": \"answer\").");
            }

            JwksResponse jwks = await FetchAsync(cancellationToken).ConfigureAwait(false);
            AnswerKey key = SignedAnswers.FindAnswerKey(jwks, _pinned) ?? throw new ModelKeyUnavailableException(
                ModelKeyUnavailableReason.ServerUnavailable,
                _pinned is null
                    ? "The key server publishes no answer key in its JWKS; check that ServerUrl points at a ModelSeal key server (protocol 2)."
                    : $"The key server does not publish the answer key '{_pinned}' this client trusts (another server answered, or its answer key was replaced; then update AnswerKeyId).");
            if (_pinned is null)
            {
                StoreLearned(key.KeyId);
                _pinned = key.KeyId;
            }

            Volatile.Write(ref _key, key);
            return key;
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task<JwksResponse> FetchAsync(CancellationToken cancellationToken)
    {
        try
        {
            using HttpResponseMessage response = await _client().GetAsync(new Uri(".well-known/jwks.json", UriKind.Relative), cancellationToken).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            return await response.Content.ReadFromJsonAsync(ProtocolJson.Default.JwksResponse, cancellationToken).ConfigureAwait(false)
                ?? throw new JsonException("null");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or NotSupportedException or OperationCanceledException or Polly.CircuitBreaker.BrokenCircuitException or Polly.Timeout.TimeoutRejectedException)
        {
            throw new ModelKeyUnavailableException(ModelKeyUnavailableReason.ServerUnavailable, "The key server's public keys (/.well-known/jwks.json) could not be read, so its answers cannot be checked. Check the network connection and ServerUrl.", e);
        }
    }

    private string? ReadLearned()
    {
        if (_learnedFile is null || !File.Exists(_learnedFile))
        {
            return null;
        }

        string kid = OwnerOnly.ReadSmallText(_learnedFile, "learned answer key file", 256).Trim();
        return kid.Length > 0 ? kid : null;
    }

    private void StoreLearned(string kid)
    {
        if (_learnedFile is null)
        {
            return;
        }

        OwnerOnly.EnsureDirectory(Path.GetDirectoryName(_learnedFile)!, "lease directory");
        using AtomicFile file = AtomicFile.Create(_learnedFile, overwrite: true, ownerOnly: true);
        file.Stream.Write(Encoding.ASCII.GetBytes(kid + "\n"));
        file.Commit();
    }

    public void Dispose()
    {
        _lock.Dispose();
        _key?.Dispose();
    }
}
