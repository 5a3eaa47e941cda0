using System.Security.Cryptography;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelSeal.Server.Attestation;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Diagnostics;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Domain;

/// <summary>A challenge issued for attestation evidence: its bytes and when it stops being usable.</summary>
internal sealed record IssuedChallenge(byte[] Challenge, DateTimeOffset ExpiresAt);

/// <summary>What re-verification found: how many attestations it checked, and those it newly rejected (thumbprint, format, reason).</summary>
internal sealed record ReverifyResult(int Checked, IReadOnlyList<(string Thumbprint, string Format, string Reason)> Rejected);

/// <summary>
/// Attestation challenges (stored in the database, so every instance sees them; single-use; purged when expired) and
/// the re-verification of accepted Android attestations against the current status list (docs/protocol.md section
/// 2.6), on demand and every <see cref="AttestationOptions.ReverifyInterval"/>.
/// </summary>
internal sealed class DeviceAttestations(Store store, Clock clock, ServerOptions options, AttestationTrust trust, ILogger<DeviceAttestations> logger) : BackgroundService
{
    /// <summary>The bytes of a challenge.</summary>
    public const int ChallengeSize = 32;

    private readonly Lock _passLock = new();
    private TaskCompletionSource<ReverifyResult?> _nextPass = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the next periodic pass has run (null when it failed; see the log).</summary>
    internal Task<ReverifyResult?> NextPassAsync()
    {
        lock (_passLock)
        {
            return _nextPass.Task;
        }
    }

    /// <summary>Issues a challenge to the caller (issuer, subject), valid for <c>Attestation:ChallengeLifetime</c>; expired ones are purged first.</summary>
    public async Task<IssuedChallenge> IssueChallengeAsync(Caller caller, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        DateTimeOffset now = clock.Now();
        byte[] challenge = RandomNumberGenerator.GetBytes(ChallengeSize);
        DateTimeOffset expiresAt = DateTimeOffset.FromUnixTimeSeconds((now + options.Attestation.ChallengeLifetime).ToUnixTimeSeconds());
        await store.WriteAsync(
            s =>
            {
                s.Attestations.IssueChallenge(challenge, caller.Issuer, caller.Subject, expiresAt, now);
                return 0;
            },
            cancellationToken).ConfigureAwait(false);
        return new IssuedChallenge(challenge, expiresAt);
    }

    /// <summary>
    /// Reads the status list file again and re-verifies every accepted Android attestation now; those that fail are
    /// marked rejected with their reason (one <c>device.attestation-rejected</c> audit record each), and the pass is
    /// audited as <c>attestations.reverified</c> by <paramref name="admin"/> (the operator for the periodic pass).
    /// </summary>
    /// <exception cref="ServerConfigurationException">The status list file cannot be read (the list in force stays).</exception>
    public async Task<ReverifyResult> ReverifyAsync(Caller? admin, CancellationToken cancellationToken)
    {
        trust.ReloadStatusList();
        DateTimeOffset now = clock.Now();
        List<DeviceAttestationRecord> accepted = store.Read(s => s.Attestations.ListAccepted(EvidenceFormats.AndroidKey));
        var failed = new List<(string Thumbprint, string Format, string Reason)>();
        foreach (DeviceAttestationRecord record in accepted)
        {
            if (AttestationRules.Reverify(record, trust, now) is { } failure)
            {
                ServerLog.AttestationRefused(logger, record.Thumbprint, failure.Code, failure.Detail);
                failed.Add((record.Thumbprint, record.Format, failure.Code));
            }
        }

        List<(string Thumbprint, string Format, string Reason)> rejected = await store.WriteAsync(
            s =>
            {
                var marked = new List<(string, string, string)>();
                foreach ((string thumbprint, string format, string reason) in failed)
                {
                    if (s.Attestations.Reject(thumbprint, reason, now))
                    {
                        marked.Add((thumbprint, format, reason));
                        s.Audit.Append(new AuditEntry(AuditEvents.AttestationRejected, reason, admin?.Subject ?? AuditEvents.Operator, Device: thumbprint, Issuer: admin?.Issuer, Attributes: new Dictionary<string, string>(StringComparer.Ordinal) { [KeyReleases.AttestationAttribute] = reason }), now);
                    }
                }

                foreach (DeviceAttestationRecord record in accepted)
                {
                    s.Attestations.Reverified(record.Thumbprint, now);
                }

                var summary = new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    ["checked"] = accepted.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["rejected"] = marked.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
                };
                s.Audit.Append(new AuditEntry(AuditEvents.AttestationsReverified, "ok", admin?.Subject ?? AuditEvents.Operator, Client: admin?.Client, Issuer: admin?.Issuer, Attributes: summary), now);
                return marked;
            },
            cancellationToken).ConfigureAwait(false);
        ServerLog.AttestationsReverified(logger, accepted.Count, rejected.Count);
        return new ReverifyResult(accepted.Count, rejected);
    }

    /// <summary>The periodic pass: every <c>Attestation:ReverifyInterval</c> on the server's clock (none when zero).</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        TimeSpan interval = options.Attestation.ReverifyInterval;
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new PeriodicTimer(interval, options.Time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                ReverifyResult? result = null;
                try
                {
                    result = await ReverifyAsync(null, stoppingToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is ServerConfigurationException or System.Data.Common.DbException)
                {
                    ServerLog.AttestationReverifyFailed(logger, e.GetType().Name, e.Message);
                }

                TaskCompletionSource<ReverifyResult?> done;
                lock (_passLock)
                {
                    done = _nextPass;
                    _nextPass = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                done.TrySetResult(result);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
