namespace ModelSeal.Cli.Tests;

public sealed class ErrorReporterTests
{
    [Fact]
    public void The_exit_codes_are_the_documented_contract()
    {
        Assert.Equal(0, ExitCodes.Success);
        Assert.Equal(1, ExitCodes.Failure);
        Assert.Equal(2, ExitCodes.Usage);
        Assert.Equal(3, ExitCodes.FormatError);
        Assert.Equal(4, ExitCodes.AuthenticationFailed);
        Assert.Equal(5, ExitCodes.KeyError);
        Assert.Equal(6, ExitCodes.IoError);
        Assert.Equal(130, ExitCodes.Cancelled);
    }

    [Fact]
    public void An_unexpected_exception_is_reported_with_its_type_and_message_but_no_stack_trace()
    {
        using var stderr = new StringWriter();
        var context = new CliContext(TextWriter.Null, stderr, Interactive: false);
        Exception thrown;
        try
        {
            throw new InvalidOperationException("something broke");
        }
        catch (InvalidOperationException e)
        {
            thrown = e;
        }

        int exitCode = ErrorReporter.Report(context, thrown, "model.mseal");

        Assert.Equal(ExitCodes.Failure, exitCode);
        Assert.StartsWith("error: unexpected System.InvalidOperationException: something broke", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("hint: ", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(" at ", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(typeof(IOException), ExitCodes.IoError)]
    [InlineData(typeof(UnauthorizedAccessException), ExitCodes.IoError)]
    [InlineData(typeof(FileNotFoundException), ExitCodes.IoError)]
    [InlineData(typeof(DirectoryNotFoundException), ExitCodes.IoError)]
    public void File_system_exceptions_are_io_errors(Type type, int expected)
    {
        var exception = (Exception)Activator.CreateInstance(type, "boom")!;

        (int exitCode, string message, string? hint) = ErrorReporter.Describe(exception, "x");

        Assert.Equal(expected, exitCode);
        Assert.Equal("boom", message);
        Assert.NotNull(hint);
    }

    [Theory]
    [InlineData("model.onnx", "model.onnx")]
    [InlineData("/tmp/a-b_c.onnx", "/tmp/a-b_c.onnx")]
    [InlineData("my model.onnx", "'my model.onnx'")]
    [InlineData("it's.onnx", @"'it'\''s.onnx'")]
    public void Paths_in_hints_are_shell_quoted(string path, string expected) =>
        Assert.Equal(expected, ErrorReporter.ShellQuote(path));
}
