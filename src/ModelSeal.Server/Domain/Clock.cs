namespace ModelSeal.Server.Domain;

/// <summary>The server's clock in whole seconds: what tokens, leases and records carry.</summary>
internal sealed class Clock(TimeProvider time)
{
    public TimeProvider Time { get; } = time;

    public DateTimeOffset Now() => DateTimeOffset.FromUnixTimeSeconds(Time.GetUtcNow().ToUnixTimeSeconds());
}
