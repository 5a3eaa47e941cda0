using System.Globalization;
using System.Text;
using ModelSeal.LoadTest;
using ModelSeal.Server.Diagnostics;

// ModelSeal key-server load generator: full key releases over HTTP (JWT + device key in, HPKE-sealed data key out,
// durable audit record per release) by N concurrent closed-loop clients, level by level. See bench/README.md.
LoadTestOptions options;
try
{
    options = LoadTestOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine("hint: " + LoadTestOptions.Usage);
    return 2;
}

if (options.Help)
{
    Console.WriteLine(LoadTestOptions.Usage);
    return 0;
}

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

try
{
    await using LoadTest test = await LoadTest.StartAsync(options, cancel.Token);
    List<LevelResult> results = [];
    foreach (int level in options.Levels)
    {
        LevelResult result = await test.RunLevelAsync(level, cancel.Token);
        results.Add(result);
        Console.Error.WriteLine(result.Summary());
    }

    string report = Report.Markdown(options, test, results);
    Console.WriteLine(report);
    if (options.Out is { } path)
    {
        await File.WriteAllTextAsync(path, report, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), cancel.Token);
    }

    List<string> failures = results.SelectMany(r => r.Failures).ToList();
    foreach (string failure in failures)
    {
        Console.Error.WriteLine($"FAILED: {failure}");
    }

    return failures.Count == 0 ? 0 : 1;
}
catch (OperationCanceledException) when (cancel.IsCancellationRequested)
{
    Console.Error.WriteLine("cancelled.");
    return 130;
}
catch (LoadTestException e)
{
    Console.Error.WriteLine($"FAILED: {e.Message}");
    return 1;
}

namespace ModelSeal.LoadTest
{
    /// <summary>A failure that ends the run with exit code 1.</summary>
    internal sealed class LoadTestException(string message) : Exception(message);

    /// <summary>Command-line options.</summary>
    internal sealed class LoadTestOptions
    {
        public const string Usage = """
            dotnet run -c Release --project bench/ModelSeal.LoadTest -- [options]
              --levels 1,16,64,256       concurrent clients per level (closed loop: each sends its next request when the last returns)
              --seconds 10               measured seconds per level
              --warmup 2                 warm-up seconds per level before measuring (its releases are audited and checked too)
              --licences 4               licences the clients' devices are spread over (device limit = clients per licence)
              --verify-every 0           also open every Nth response of each client with its device key (0: only each client's first per level)
              --out FILE                 also write the markdown report to FILE
              --url URL                  target a running server instead of starting one (needs --admin-credential-file;
                                         its rate limits must allow the load; audit rows are then counted through the admin API)
              --admin-credential-file F  the server's admin credential file (from --admin-credential-out; with --url)
              --server-log LEVEL         log level of the in-process server (default Warning; Information logs every release)
              --metrics on|off           the in-process server's metrics (OpenTelemetry, /metrics; default on)
              --postgres-env VAR         the in-process server on PostgreSQL, connection string in $VAR (default: SQLite);
                                         audit rows are then counted through the admin API
              --abusers N                abusive clients besides the legitimate ones, from 127.0.0.2 to 127.0.0.9, each sending
                                         releases with an invalid token in a closed loop during every level; with it (also
                                         --abusers 0) each legitimate client connects from its own address, 127.0.1.x
              --requests-per-minute N    the in-process server's per-address limit (default: so high it never applies)
              --tokens own|idp           own (default): licences and the server's own tokens; idp: an external issuer's
                                         access tokens (ES256, static JWKS file) and one entitlement rule, a user per
                                         client (in-process server only)
              --attestation              every grant has an attestation policy (Android key attestation by a TEST-ONLY CA):
                                         each device registers once, with evidence, before the levels, which then
                                         measure repeat releases under the policy (in-process server only)
              --seed-users N             before the run, insert N synthetic users of another issuer (default 0)
              --seed-devices M           and M devices for them, N <= M <= 2N (default N + N/2)
            """;

        public IReadOnlyList<int> Levels { get; private set; } = [1, 16, 64, 256];

        public int Seconds { get; private set; } = 10;

        public int WarmupSeconds { get; private set; } = 2;

        public int Licences { get; private set; } = 4;

        public int VerifyEvery { get; private set; }

        public string? Out { get; private set; }

        public Uri? Url { get; private set; }

        public string? AdminCredentialFile { get; private set; }

        public Microsoft.Extensions.Logging.LogLevel ServerLog { get; private set; } = Microsoft.Extensions.Logging.LogLevel.Warning;

        public bool Metrics { get; private set; } = true;

        /// <summary>The in-process server on PostgreSQL: the name of the variable holding the connection string.</summary>
        public string? PostgresVariable { get; private set; }

        public bool Help { get; private set; }

        /// <summary>Abusive clients (invalid tokens, from 127.0.0.2–9) during every level.</summary>
        public int Abusers { get; private set; }

        /// <summary>
        /// Each legitimate client from its own address (127.0.1.x) instead of one pooled client on 127.0.0.1: set by
        /// --abusers, also --abusers 0, so that the runs with and without abuse compare alike.
        /// </summary>
        public bool SpreadAddresses { get; private set; }

        /// <summary>The in-process server's RequestsPerMinutePerClient.</summary>
        public int RequestsPerMinute { get; private set; } = 100_000_000;

        public IReadOnlyList<string> CommandLine { get; private set; } = [];

        /// <summary>The grant has an attestation policy; each device registers once with test-CA evidence before the levels.</summary>
        public bool Attestation { get; private set; }

        /// <summary>The clients' tokens come from an external issuer and an entitlement rule grants the keys.</summary>
        public bool IdpTokens { get; private set; }

        /// <summary>Synthetic users of another issuer inserted before the run (the large-database benchmark).</summary>
        public int SeedUsers { get; private set; }

        /// <summary>Their devices (at least one and at most two per user).</summary>
        public int SeedDevices { get; private set; } = -1;

        public static LoadTestOptions Parse(string[] args)
        {
            var options = new LoadTestOptions { CommandLine = args };
            for (int i = 0; i < args.Length; i++)
            {
                string name = args[i];
                if (name is "-h" or "--help")
                {
                    options.Help = true;
                    continue;
                }

                if (name == "--attestation")
                {
                    options.Attestation = true;
                    continue;
                }

                string value = i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{name} needs a value.");
                switch (name)
                {
                    case "--levels":
                        options.Levels = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => Positive(name, v)).ToArray();
                        if (options.Levels.Count == 0)
                        {
                            throw new ArgumentException("--levels needs at least one level.");
                        }

                        break;
                    case "--seconds":
                        options.Seconds = Positive(name, value);
                        break;
                    case "--warmup":
                        options.WarmupSeconds = NonNegative(name, value);
                        break;
                    case "--licences":
                        options.Licences = Positive(name, value);
                        break;
                    case "--verify-every":
                        options.VerifyEvery = NonNegative(name, value);
                        break;
                    case "--out":
                        options.Out = value;
                        break;
                    case "--abusers":
                        options.Abusers = NonNegative(name, value);
                        options.SpreadAddresses = true;
                        break;
                    case "--requests-per-minute":
                        options.RequestsPerMinute = Positive(name, value);
                        break;
                    case "--url":
                        options.Url = Uri.TryCreate(value.EndsWith('/') ? value : value + "/", UriKind.Absolute, out Uri? url) ? url : throw new ArgumentException($"--url '{value}' is not an absolute URL.");
                        break;
                    case "--admin-credential-file":
                        options.AdminCredentialFile = value;
                        break;
                    case "--metrics":
                        options.Metrics = value switch
                        {
                            "on" => true,
                            "off" => false,
                            _ => throw new ArgumentException($"--metrics must be 'on' or 'off', not '{value}'."),
                        };
                        break;
                    case "--postgres-env":
                        options.PostgresVariable = value;
                        break;
                    case "--tokens":
                        options.IdpTokens = value switch
                        {
                            "own" => false,
                            "idp" => true,
                            _ => throw new ArgumentException($"--tokens must be 'own' or 'idp', not '{value}'."),
                        };
                        break;
                    case "--seed-users":
                        options.SeedUsers = NonNegative(name, value);
                        break;
                    case "--seed-devices":
                        options.SeedDevices = NonNegative(name, value);
                        break;
                    case "--server-log":
                        options.ServerLog = Enum.TryParse(value, ignoreCase: true, out Microsoft.Extensions.Logging.LogLevel level) ? level : throw new ArgumentException($"--server-log '{value}' is not a log level.");
                        break;
                    default:
                        throw new ArgumentException($"Unknown option '{name}'.");
                }
            }

            if (options.Url is not null && options.AdminCredentialFile is null)
            {
                throw new ArgumentException("--url needs --admin-credential-file (to provision the model and licences).");
            }

            if (options.SeedDevices < 0)
            {
                options.SeedDevices = options.SeedUsers + (options.SeedUsers / 2);
            }

            if (options.SeedDevices < options.SeedUsers || options.SeedDevices > 2L * options.SeedUsers)
            {
                throw new ArgumentException($"--seed-devices must be between --seed-users ({options.SeedUsers}) and twice it; got {options.SeedDevices}.");
            }

            if (options.Url is not null && (options.IdpTokens || options.SeedUsers > 0 || options.Attestation))
            {
                throw new ArgumentException("--tokens idp, --seed-users and --attestation need the in-process server (not --url).");
            }

            return options;
        }

        private static int Positive(string name, string value) =>
            int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : throw new ArgumentException($"{name} must be a positive integer, not '{value}'.");

        private static int NonNegative(string name, string value) =>
            int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : throw new ArgumentException($"{name} must be a non-negative integer, not '{value}'.");
    }
}
