using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;

namespace ModelSeal.Cli.Bench;

/// <summary>
/// What one fresh process measures for <c>modelseal bench</c> (run as the hidden verb <c>bench-child</c>): either the
/// floor — reading a plaintext file into fresh memory with <see cref="File.ReadAllBytes"/> — or a sealed load —
/// decrypting a sealed file into memory. Prints one line: the milliseconds of that work alone, the milliseconds of the
/// one-time start-up of the crypto library and thread pool before it (0 for the floor), and the process's peak
/// resident set size in KiB.
/// </summary>
internal static class BenchChild
{
    public const string Verb = "bench-child";

    public const string ReadMode = "read";

    public const string LoadMode = "load";

    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        if (args is [ReadMode, string plaintext])
        {
            var clock = Stopwatch.StartNew();
            byte[] bytes = await File.ReadAllBytesAsync(plaintext).ConfigureAwait(false);
            double elapsed = clock.Elapsed.TotalMilliseconds;
            GC.KeepAlive(bytes);
            Report(output, elapsed, 0);
            return ExitCodes.Success;
        }

        if (args is [LoadMode, string sealedPath, string keyPath, string threads])
        {
            using ModelKey key = KeyFile.Read(keyPath);
            var options = new DecryptOptions { MaxDegreeOfParallelism = int.Parse(threads, CultureInfo.InvariantCulture) };

            // Paid once per process by any app that uses .NET cryptography and the thread pool, not by each load:
            // measured apart (OpenSSL's start-up alone is tens of milliseconds).
            var clock = Stopwatch.StartNew();
            await StartRuntimeServicesAsync().ConfigureAwait(false);
            double startup = clock.Elapsed.TotalMilliseconds;

            clock.Restart();
            await using var file = new FileStream(sealedPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 4096);
            using DecryptedModel model = await SealedModel.DecryptAsync(file, key, options).ConfigureAwait(false);
            double elapsed = clock.Elapsed.TotalMilliseconds;
            Report(output, elapsed, startup);
            return ExitCodes.Success;
        }

        throw new CliException(ExitCodes.Usage, $"'{Verb}' is internal to 'modelseal bench'.", "Run 'modelseal bench'.");
    }

    private static void Report(TextWriter output, double milliseconds, double startupMilliseconds) =>
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{milliseconds:R} {startupMilliseconds:R} {PeakResidentKiB()}"));

    /// <summary>First use of the crypto library (OpenSSL on Linux: HMAC, AES-GCM, random numbers) and of the thread pool.</summary>
    private static async Task StartRuntimeServicesAsync()
    {
        byte[] key = RandomNumberGenerator.GetBytes(32);
        HMACSHA512.HashData(key, key);
        using var aead = new AesGcm(key, AesGcm.TagByteSizes.MaxSize);
        byte[] block = new byte[16];
        aead.Encrypt(new byte[AesGcm.NonceByteSizes.MaxSize], block, block, new byte[AesGcm.TagByteSizes.MaxSize]);
        await Task.Run(() => { }).ConfigureAwait(false);
    }

    /// <summary>VmHWM from /proc/self/status (Linux); 0 where there is none.</summary>
    internal static long PeakResidentKiB()
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path))
        {
            return 0;
        }

        foreach (string line in File.ReadLines(path))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
