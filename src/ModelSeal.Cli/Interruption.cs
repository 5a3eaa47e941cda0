using System.Runtime.InteropServices;

namespace ModelSeal.Cli;

/// <summary>
/// SIGINT (Ctrl+C), SIGTERM and SIGHUP. The first one cancels the run (<see cref="Token"/>): the verb stops, deletes
/// what it had started writing and exits with <see cref="ExitCodes.Cancelled"/> after <c>error: interrupted by …</c>.
/// A repeated one (a second Ctrl+C, or <c>timeout -s INT</c>, which signals the process and then its process group)
/// stops the process at once, but only after deleting every temporary file (<c>AtomicFile.AbandonAll</c>) — unlike
/// .NET's default, which kills the process on a second Ctrl+C with its temporary files still on disk. (ModelSeal.Client
/// compiles in its own AtomicFile, so the name is not a cref; its device key and lease writes, in <c>modelseal demo</c>, are
/// not abandoned here: on Linux they leave nothing, elsewhere the next write of the same file removes what is left.)
/// </summary>
internal sealed class Interruption : IDisposable
{
    private readonly CancellationTokenSource _cancellation = new();
    private readonly List<PosixSignalRegistration> _registrations = [];
    private readonly TextWriter? _error;
    private readonly Lock _reporting = new();
    private int _signals;
    private bool _reported;

    /// <summary>No signal handling: only the token, cancelled by the caller or never.</summary>
    public Interruption()
    {
    }

    private Interruption(TextWriter error)
    {
        _error = error;
        foreach (PosixSignal signal in (PosixSignal[])[PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP])
        {
            _registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
        }
    }

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _cancellation.Token;

    /// <summary>The name of the first signal received (<c>SIGINT</c>, …), or null.</summary>
    public string? Signal { get; private set; }

    /// <summary>Handles SIGINT, SIGTERM and SIGHUP from now until disposed, reporting on <paramref name="error"/>.</summary>
    public static Interruption Register(TextWriter error) => new(error);

    /// <summary>
    /// Prints the one <c>error:</c> line of a cancelled run, unless already printed, and returns <see cref="ExitCodes.Cancelled"/>.
    /// </summary>
    public int Report(CliContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Write(context.Error);
        return ExitCodes.Cancelled;
    }

    public void Dispose()
    {
        foreach (PosixSignalRegistration registration in _registrations)
        {
            registration.Dispose();
        }

        _cancellation.Dispose();
    }

    // Under a lock: a repeated signal that exits the process must not overtake the line the run is still writing.
    private void Write(TextWriter error)
    {
        lock (_reporting)
        {
            if (_reported)
            {
                return;
            }

            _reported = true;
            error.WriteLine(Signal is null
                ? "error: cancelled; nothing was written."
                : $"error: interrupted by {Signal}; nothing was written (no partial output or temporary file is left).");
            error.Flush();
        }
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // never the default action (termination): the run deletes its temporary files first
        lock (_reporting)
        {
            Signal ??= Name(context.Signal);
        }

        if (Interlocked.Increment(ref _signals) == 1)
        {
            _ = _cancellation.CancelAsync();
            return;
        }

        AtomicFile.AbandonAll();
        Write(_error!);
        Environment.Exit(ExitCodes.Cancelled);
    }

    private static string Name(PosixSignal signal) => signal switch
    {
        PosixSignal.SIGINT => "SIGINT",
        PosixSignal.SIGTERM => "SIGTERM",
        PosixSignal.SIGHUP => "SIGHUP",
        _ => signal.ToString(),
    };
}
