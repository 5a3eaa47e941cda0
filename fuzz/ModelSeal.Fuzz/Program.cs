using ModelSeal.Fuzz;
using SharpFuzz;

// ModelSeal.Fuzz TARGET            run TARGET under afl-fuzz (SharpFuzz's out-of-process fork server); outside afl-fuzz
//                                  it runs the input on standard input once, so `dotnet ModelSeal.Fuzz.dll header < file`
//                                  replays a crash.
// ModelSeal.Fuzz TARGET --explain  runs the input on standard input once and lists the documented failures the harness
//                                  caught (none: the input was accepted everywhere); any other exception escapes.
// ModelSeal.Fuzz --list            the target names, one a line.
// ModelSeal.Fuzz --seeds DIR       (re)writes the generated seed files (models sealed with the fixed key, JSON bodies,
//                                  key, credential and lease files) under DIR/TARGET/.
if (args is ["--list"])
{
    foreach (string name in Targets.Names)
    {
        Console.WriteLine(name);
    }

    return 0;
}

if (args is ["--seeds", string directory])
{
    await Seeds.WriteAsync(directory);
    return 0;
}

if (args is [string explained, "--explain"] && Targets.Find(explained) is { } explain)
{
    using var input = new MemoryStream();
    await Console.OpenStandardInput().CopyToAsync(input);
    Outcome.Recording = true;
    explain(input.ToArray());
    Console.WriteLine(Outcome.All.Count == 0 ? "accepted: no documented failure" : string.Join(Environment.NewLine, Outcome.All.Select(o => "caught " + o)));
    return 0;
}

if (args is not [string target] || Targets.Find(target) is not { } harness)
{
    await Console.Error.WriteLineAsync($"usage: ModelSeal.Fuzz TARGET | --list | --seeds DIR   (targets: {string.Join(", ", Targets.Names)})");
    return 2;
}

Fuzzer.OutOfProcess.Run(stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    harness(buffer.ToArray());
});
return 0;
