namespace ModelSeal.Cli.Tests;

public sealed class TableTests
{
    [Fact]
    public void Cells_are_made_terminal_safe_before_the_columns_are_aligned()
    {
        using var output = new StringWriter();

        Table.Write(output, ["ID", "SUBJECT", "STATE"], [["1", "evil\u001b[2J", "active"], ["22", null, "revoked"]]);

        Assert.Equal(
            """
            ID  SUBJECT          STATE
            1   evil\u{001B}[2J  active
            22  -                revoked

            """.ReplaceLineEndings(),
            output.ToString());
    }
}
