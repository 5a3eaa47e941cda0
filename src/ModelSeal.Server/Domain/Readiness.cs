using System.Data.Common;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>Whether the server can release keys: the database answers and the master key wraps and unwraps.</summary>
internal sealed class Readiness(Store store, MasterKeyRing masterKeys, ILogger<Readiness> logger)
{
    private const string ProbeKeyId = "readiness-probe";

    public bool IsReady()
    {
        try
        {
            store.Read(s => s.Models.Count());
            Span<byte> probe = stackalloc byte[ModelKey.SizeInBytes];
            (int version, byte[] wrapped) = masterKeys.Wrap(probe, ProbeKeyId);
            masterKeys.Unwrap(version, wrapped, ProbeKeyId, probe);
            return true;
        }
        catch (Exception e) when (e is DbException or CryptographicException or InvalidOperationException)
        {
            ServerLog.NotReady(logger, e.GetType().Name);
            return false;
        }
    }
}
