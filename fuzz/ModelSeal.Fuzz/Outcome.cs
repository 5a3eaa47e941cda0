namespace ModelSeal.Fuzz;

/// <summary>The documented failures a harness caught in this process, for <c>--explain</c> (triage of an input).</summary>
internal static class Outcome
{
    private static readonly List<string> CaughtList = [];

    /// <summary>Set by <c>--explain</c> only: while fuzzing nothing is kept (millions of executions in one process).</summary>
    public static bool Recording { get; set; }

    public static IReadOnlyList<string> All => CaughtList;

    public static void Caught(Exception e)
    {
        if (Recording)
        {
            CaughtList.Add($"{e.GetType().Name}: {e.Message}");
        }
    }
}
