using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ModelSeal.Cli.Tests;

/// <summary>Text from outside (the key server's answers, subjects, ids) never reaches the terminal as control characters.</summary>
public sealed class TerminalSafetyTests
{
    [Theory]
    [InlineData("plain subject é ≤", "plain subject é ≤")]
    [InlineData("\u001b[2Jcleared", "\\u{001B}[2Jcleared")]
    [InlineData("line\nhint: fake", "line\\u{000A}hint: fake")]
    [InlineData("a\rb\u0007\u007f\u009b", "a\\u{000D}b\\u{0007}\\u{007F}\\u{009B}")]
    [InlineData("evil\u202Etxt.exe", "evil\\u{202E}txt.exe")]
    [InlineData("\u2066isolate\u2069", "\\u{2066}isolate\\u{2069}")]
    [InlineData("", "")]
    public void Safe_escapes_control_and_bidirectional_characters_only(string text, string expected) =>
        Assert.Equal(expected, Text.Safe(text));

    [Fact]
    public async Task A_hostile_servers_refusal_is_printed_without_its_escape_sequences()
    {
        // A "key server" on 127.0.0.1 whose refusal detail tries to clear the screen and forge a hint line.
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using WebApplication hostile = builder.Build();
        hostile.MapPost("/v1/token", () => Results.Problem(detail: "\u001b[2J\u001b[Hbad\nhint: run rm -rf", statusCode: 401, type: "https://modelseal.dev/problems/unauthorized"));
        await hostile.StartAsync(TestContext.Current.CancellationToken);
        using var work = new Workspace();
        OwnerOnlyFile.Write(work["admin.credential"], "anything");

        CliResult result = await Workspace.RunAsync("model", "list", "--server", hostile.Urls.Single(), "--admin-credential-file", work["admin.credential"]);

        Assert.Equal(7, result.ExitCode);
        Assert.DoesNotContain('\u001b', result.Stderr);
        Assert.Contains("\\u{001B}[2J", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Split('\n'), line => line.StartsWith("hint:", StringComparison.Ordinal));
        await hostile.StopAsync(TestContext.Current.CancellationToken);
    }
}
