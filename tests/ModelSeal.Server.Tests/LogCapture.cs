using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace ModelSeal.Server.Tests;

/// <summary>An in-memory logger provider: every message, its structured values and its exception, as text.</summary>
internal sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var text = new System.Text.StringBuilder();
            text.Append(logLevel).Append(' ').Append(category).Append(": ").Append(formatter(state, exception));
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
            {
                foreach (KeyValuePair<string, object?> value in values)
                {
                    text.Append(" | ").Append(value.Key).Append('=').Append(value.Value);
                }
            }

            if (exception is not null)
            {
                text.Append(" | ").Append(exception);
            }

            owner._lines.Enqueue(text.ToString());
        }
    }
}

/// <summary>
/// Every secret the tests saw (data keys in hex and base64url, credentials, tokens). Logs are checked against it.
/// </summary>
internal static class Secrets
{
    private static readonly ConcurrentDictionary<string, string> All = new(StringComparer.Ordinal);

    public static void Add(string kind, string secret)
    {
        All.TryAdd(secret, kind);
    }

    public static void AddKey(ModelKey key)
    {
        byte[] bytes = new byte[ModelKey.SizeInBytes];
        key.Export(bytes);
        Add("data key (hex)", Convert.ToHexStringLower(bytes));
        Add("data key (HEX)", Convert.ToHexString(bytes));
        Add("data key (base64url)", System.Buffers.Text.Base64Url.EncodeToString(bytes));
        Add("data key (base64)", Convert.ToBase64String(bytes));
    }

    public static int Count => All.Count;

    /// <summary>The kinds of secret found in <paramref name="lines"/> (never the secrets themselves).</summary>
    public static List<string> FoundIn(IEnumerable<string> lines)
    {
        string[] snapshot = lines.ToArray();
        return All.Concat(ExternalIssuer.Issued.Select(token => KeyValuePair.Create(token, "external token")))
            .Where(secret => snapshot.Any(line => line.Contains(secret.Key, StringComparison.Ordinal))).Select(secret => secret.Value).Distinct().ToList();
    }
}
