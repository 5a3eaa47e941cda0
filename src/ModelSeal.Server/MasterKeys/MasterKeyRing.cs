using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;

namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// The server's master keys, whichever <see cref="IMasterKeyProvider"/> holds them: wraps new data keys with the
/// current version, unwraps with any version, and adds versions for rotation (the caller rewraps). The current version
/// is the one the database records (<see cref="MasterKeyVersions"/>): a higher version found in the token or the file
/// is never adopted on its own — someone with the token's user PIN or write access to <c>master.keys</c> could have put
/// it there. A ring on its own (no database) starts with the provider's latest version. Disposing it disposes the
/// provider.
/// </summary>
internal sealed class MasterKeyRing(IMasterKeyProvider provider) : IDisposable
{
    public const int KeySize = 32;
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int WrappedSize = NonceSize + ModelKey.SizeInBytes + TagSize;

    /// <summary>The provider behind the ring.</summary>
    public IMasterKeyProvider Provider { get; } = provider ?? throw new ArgumentNullException(nameof(provider));

    /// <summary>Where wrap and unwrap durations are recorded (none when null).</summary>
    public ServerTelemetry? Telemetry { get; set; }

    /// <summary>The provider's kind for metrics: <c>file</c>, <c>pkcs11</c> or <c>other</c>.</summary>
    public string ProviderKind { get; } = provider switch
    {
        FileMasterKeyProvider => MasterKeyOptions.File,
        Pkcs11MasterKeyProvider => MasterKeyOptions.Pkcs11,
        _ => "other",
    };

    private readonly Lock _lock = new();
    private volatile int _current = provider?.LatestVersion ?? 0;
    private int _ignored;

    /// <summary>Where the ring logs versions it ignores or follows (nowhere when null).</summary>
    public ILogger? Logger { get; set; }

    /// <summary>
    /// Reads the version the database records, for a ring whose token other instances share: when the provider holds
    /// a version above the current one, the ring moves to it only once the database records it (another instance's
    /// rotation committed). Null: the ring never moves on its own.
    /// </summary>
    public Func<int?>? RecordedVersion { get; set; }

    /// <summary>The version that wraps new keys.</summary>
    public int CurrentVersion => _current;

    /// <summary>Makes <paramref name="version"/> (one the provider holds) the version that wraps new keys.</summary>
    /// <exception cref="ServerConfigurationException">The provider does not hold it.</exception>
    public void UseVersion(int version)
    {
        lock (_lock)
        {
            if (!Provider.Holds(version) && (Provider.Refresh() < version || !Provider.Holds(version)))
            {
                throw new ServerConfigurationException(string.Create(CultureInfo.InvariantCulture, $"The database records master key v{version} as the current one, but {Provider.Description} does not hold it; restore the master keys from the backup made with this database (docs/deploy.md \"Backup and restore\")."));
            }

            _current = version;
        }
    }

    /// <summary>Loads <c>master.keys</c> (the file provider), or creates it with v1 when <paramref name="mayCreate"/>.</summary>
    public static MasterKeyRing LoadOrCreate(string path, bool mayCreate) => new(FileMasterKeyProvider.LoadOrCreate(path, mayCreate));

    /// <inheritdoc cref="IMasterKeyProvider.Wrap"/>
    public (int Version, byte[] Wrapped) Wrap(ReadOnlySpan<byte> dataKey, string keyId)
    {
        if (dataKey.Length != ModelKey.SizeInBytes)
        {
            throw new ArgumentException($"A data key is {ModelKey.SizeInBytes} bytes, not {dataKey.Length}.", nameof(dataKey));
        }

        using Activity? activity = ServerTelemetry.Source.StartActivity(ServerTelemetry.WrapActivity, ActivityKind.Internal);
        activity?.SetTag("modelseal.masterkey.provider", ProviderKind);
        long start = Stopwatch.GetTimestamp();
        try
        {
            int version = Refresh();
            return (version, Provider.Wrap(version, dataKey, keyId));
        }
        finally
        {
            Telemetry?.MasterKeyOperation(start, ProviderKind, "wrap");
        }
    }

    /// <inheritdoc cref="IMasterKeyProvider.Unwrap"/>
    /// <remarks>
    /// <c>parent</c> is the trace the unwrap belongs to when it runs off the request's flow (on the store's writer
    /// thread); by default the current activity.
    /// </remarks>
    public void Unwrap(int version, ReadOnlySpan<byte> wrapped, string keyId, Span<byte> dataKey, ActivityContext parent = default)
    {
        if (dataKey.Length != ModelKey.SizeInBytes)
        {
            throw new ArgumentException($"A data key is {ModelKey.SizeInBytes} bytes, not {dataKey.Length}.", nameof(dataKey));
        }

        if (wrapped.Length != WrappedSize)
        {
            throw new System.Security.Cryptography.CryptographicException("A wrapped data key has the wrong size.");
        }

        using Activity? activity = ServerTelemetry.Source.StartActivity(ServerTelemetry.UnwrapActivity, ActivityKind.Internal, parent);
        activity?.SetTag("modelseal.masterkey.provider", ProviderKind);
        activity?.SetTag("modelseal.masterkey.version", version);
        long start = Stopwatch.GetTimestamp();
        try
        {
            Provider.Unwrap(version, wrapped, keyId, dataKey);
        }
        finally
        {
            Telemetry?.MasterKeyOperation(start, ProviderKind, "unwrap");
        }
    }

    /// <summary>Adds master key v(N+1), N the provider's latest, durably, and makes it current; returns its version.</summary>
    public int AddVersion()
    {
        lock (_lock)
        {
            int version = Provider.AddVersion();
            _current = version;
            return version;
        }
    }

    /// <summary>
    /// The version to wrap with: the current one, unless the provider now holds a higher version that the database
    /// records (another instance rotated); a higher version the database does not record is ignored, with a warning
    /// (once per version). Runs before every wrap.
    /// </summary>
    public int Refresh()
    {
        int current = _current;
        int latest = Provider.Refresh();
        if (latest <= current)
        {
            return current;
        }

        lock (_lock)
        {
            if (RecordedVersion?.Invoke() is int recorded && recorded > _current && recorded <= latest && Provider.Holds(recorded))
            {
                _current = recorded;
                if (Logger is not null)
                {
                    KeyStoreLog.VersionFollowed(Logger, recorded);
                }
            }

            if (latest > _current && latest > _ignored)
            {
                _ignored = latest;
                if (Logger is not null)
                {
                    KeyStoreLog.VersionIgnored(Logger, Provider.Description, latest, _current);
                }
            }

            return _current;
        }
    }

    /// <summary>Disposes the provider (zeroes file keys, closes token sessions).</summary>
    public void Dispose() => Provider.Dispose();
}
