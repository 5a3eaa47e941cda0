using System.Diagnostics;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Security;

namespace ModelSeal.Server.MasterKeys;

/// <summary>
/// The server's master keys, whichever <see cref="IMasterKeyProvider"/> holds them: wraps new data keys with the
/// current version, unwraps with any version, and adds versions for rotation (the caller rewraps). Disposing it
/// disposes the provider.
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

    /// <summary>The version that wraps new keys.</summary>
    public int CurrentVersion => Provider.CurrentVersion;

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
            return Provider.Wrap(dataKey, keyId);
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

    /// <inheritdoc cref="IMasterKeyProvider.AddVersion"/>
    public int AddVersion() => Provider.AddVersion();

    /// <summary>Disposes the provider (zeroes file keys, closes token sessions).</summary>
    public void Dispose() => Provider.Dispose();
}
