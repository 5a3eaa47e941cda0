namespace ModelSeal.Cli;

/// <summary>A plain-text table for standard output: a header row, columns aligned with two spaces, no trailing blanks.</summary>
internal static class Table
{
    /// <summary>
    /// Writes <paramref name="rows"/> under <paramref name="headers"/>. Every cell is made terminal-safe
    /// (<see cref="Text.Safe"/>) before the widths are measured, so escaped text stays aligned; an empty cell is "-".
    /// </summary>
    public static void Write(TextWriter writer, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string?>> rows)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(headers);
        List<string[]> cells = [[.. headers], .. rows.Select(row => row.Select(c => string.IsNullOrEmpty(c) ? "-" : Text.Safe(c)).ToArray())];
        int[] widths = [.. headers.Select((_, i) => cells.Max(row => i < row.Length ? row[i].Length : 0))];
        foreach (string[] row in cells)
        {
            writer.WriteLine(string.Join("  ", row.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd());
        }
    }
}
