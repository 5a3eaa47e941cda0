using System.Data.Common;
using System.Threading.Channels;
using ModelSeal.Server.Diagnostics;

namespace ModelSeal.Server.Storage;

/// <summary>
/// The single writer with group commit: it takes every write waiting in its queue (up to <see cref="MaxBatch"/>), runs
/// them one after the other in one transaction that holds the database's write lock, each inside its own savepoint
/// (so each sees the writes before it, and a failing one is rolled back alone), commits once — one durable flush for
/// the whole batch — and only then completes the waiting callers. A commit failure fails every write of the batch.
/// It knows nothing of tables: <see cref="Store"/> gives it the connection and the transaction to use.
/// </summary>
internal sealed class StoreWriter : IDisposable
{
    /// <summary>The most writes one transaction takes.</summary>
    public const int MaxBatch = 256;

    private const string Savepoint = "write";

    private readonly Func<DbConnection> _open;
    private readonly Func<DbConnection, DbTransaction> _beginWrite;
    private readonly ServerTelemetry? _telemetry;

    // Held by the writer while it runs a batch, and by Exclusive, for work that must not run inside a transaction.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Channel<WriteItem> _writes = Channel.CreateUnbounded<WriteItem>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread _thread;
    private int _queued;
    private bool _disposed;

    public StoreWriter(Func<DbConnection> open, Func<DbConnection, DbTransaction> beginWrite, ServerTelemetry? telemetry)
    {
        _open = open;
        _beginWrite = beginWrite;
        _telemetry = telemetry;

        // A thread of its own: the writer blocks in the database and its flushes, which must not take a thread-pool
        // thread from request handling (a 2-core machine starts with 2 of them).
        _thread = new Thread(WriteLoop) { IsBackground = true, Name = "ModelSeal store writer" };
        _thread.Start();
    }

    /// <summary>Writes queued and not yet taken by the writer (for tests and diagnostics).</summary>
    public int Queued => Volatile.Read(ref _queued);

    /// <summary>
    /// Queues <paramref name="work"/>; completes once its transaction has committed durably. An exception rolls back
    /// everything <paramref name="work"/> wrote (and nothing else) and is rethrown here. If the commit fails, the
    /// result (when it is <see cref="IDisposable"/>) is disposed and the commit's exception is thrown.
    /// <paramref name="cancellationToken"/> is honoured until the writer takes the work; from then on it runs and commits.
    /// </summary>
    public Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, T> work, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        var item = new WriteItem<T>(work, cancellationToken);
        Interlocked.Increment(ref _queued);
        if (_writes.Writer.TryWrite(item))
        {
            return item.Task;
        }

        Interlocked.Decrement(ref _queued);
        return Task.FromException<T>(new ObjectDisposedException(nameof(StoreWriter)));
    }

    /// <summary>Runs <paramref name="work"/> between two batches, outside any transaction.</summary>
    public async Task ExclusiveAsync(Action<DbConnection> work, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using DbConnection connection = _open();
            work(connection);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Runs the queued writes and stops the writer.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;

        // Writes already queued still run and commit; new ones are refused.
        _writes.Writer.TryComplete();
        _thread.Join();
        _gate.Dispose();
    }

    private void WriteLoop()
    {
        var batch = new List<WriteItem>(MaxBatch);
        while (WaitForWrites())
        {
            _gate.Wait();
            try
            {
                while (batch.Count < MaxBatch && _writes.Reader.TryRead(out WriteItem? item))
                {
                    Interlocked.Decrement(ref _queued);
                    if (item.CancellationToken.IsCancellationRequested)
                    {
                        item.Cancel();
                    }
                    else
                    {
                        batch.Add(item);
                    }
                }

                if (batch.Count > 0)
                {
                    RunBatch(batch);
                }
            }
            finally
            {
                batch.Clear();
                _gate.Release();
            }
        }
    }

    private bool WaitForWrites()
    {
        ValueTask<bool> ready = _writes.Reader.WaitToReadAsync();
        return ready.IsCompletedSuccessfully ? ready.Result : ready.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>One transaction for the whole batch, a savepoint per write; completes every write after the commit.</summary>
    private void RunBatch(List<WriteItem> batch)
    {
        Exception? failure = null;
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            using DbConnection connection = _open();
            using DbTransaction transaction = _beginWrite(connection);
            foreach (WriteItem item in batch)
            {
                transaction.Save(Savepoint);
                if (item.Run(connection, transaction))
                {
                    transaction.Release(Savepoint);
                }
                else
                {
                    // Its own writes only; a rollback that fails (the transaction is gone) fails the whole batch.
                    transaction.Rollback(Savepoint);
                    transaction.Release(Savepoint);
                }
            }

            transaction.Commit();
        }
#pragma warning disable CA1031 // Whatever ends the transaction is handed to every caller of the batch.
        catch (Exception e)
#pragma warning restore CA1031
        {
            failure = e;
        }

        _telemetry?.StoreWrite(start, failure is null);
        foreach (WriteItem item in batch)
        {
            item.Complete(failure);
        }
    }

    /// <summary>A queued write: its work, its caller's token, and how to complete the caller.</summary>
    private abstract class WriteItem(CancellationToken cancellationToken)
    {
        public CancellationToken CancellationToken { get; } = cancellationToken;

        /// <summary>Runs the work; false when it threw (the exception is kept for the caller).</summary>
        public abstract bool Run(DbConnection connection, DbTransaction transaction);

        /// <summary>Completes the caller: with the work's result or exception, or the commit's exception.</summary>
        public abstract void Complete(Exception? commitFailure);

        public abstract void Cancel();
    }

    private sealed class WriteItem<T>(Func<DbConnection, DbTransaction, T> work, CancellationToken cancellationToken) : WriteItem(cancellationToken)
    {
        // Continuations run on the thread pool, not on the writer, which goes on to the next batch.
        private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _result;
        private Exception? _exception;

        public Task<T> Task => _completion.Task;

        public override bool Run(DbConnection connection, DbTransaction transaction)
        {
            try
            {
                _result = work(connection, transaction);
                return true;
            }
#pragma warning disable CA1031 // Handed to the caller, as if the work had run on its own thread.
            catch (Exception e)
#pragma warning restore CA1031
            {
                _exception = e;
                return false;
            }
        }

        public override void Complete(Exception? commitFailure)
        {
            if (_exception is not null)
            {
                _completion.SetException(_exception);
            }
            else if (commitFailure is not null)
            {
                (_result as IDisposable)?.Dispose();
                _completion.SetException(commitFailure);
            }
            else
            {
                _completion.SetResult(_result!);
            }

            _result = default;
        }

        public override void Cancel() => _completion.SetCanceled(CancellationToken);
    }
}
