using System.Net;
using System.Text;
using System.Text.Json;

namespace ModelSeal.Client.Tests;

/// <summary>The licence credential file as docs/protocol.md section 8 describes it, read by <see cref="LicenceCredentialTokenSource"/>.</summary>
public sealed class CredentialFileTests
{
    [Theory]
    [InlineData("cred_0123-abc", "cred_0123-abc")]
    [InlineData("cred_0123-abc\n", "cred_0123-abc")]
    [InlineData("\r\n\r\n  cred_0123-abc \t\r\n\r\n", "cred_0123-abc")]
    [InlineData("\u00a0cred\u00a0with inner space\u00a0\n", "cred\u00a0with inner space")]
    [InlineData("# not a comment\n", "# not a comment")]
    public async Task The_credential_is_the_file_without_white_space_at_either_end(string content, string sent)
    {
        using var directory = new TempDirectory();
        string path = directory.Sub("licence.credential");
        OwnerOnlyFile.Write(path, content);
        var server = new TokenEndpoint();
        using var client = new HttpClient(server) { BaseAddress = new Uri("http://127.0.0.1:9/") };
        using var tokens = new LicenceCredentialTokenSource(client, "lic_0123", path);

        AccessToken token = await tokens.GetTokenAsync(TestContext.Current.CancellationToken);

        Assert.Equal("device-7", token.Subject);
        using JsonDocument request = JsonDocument.Parse(server.Body!);
        Assert.Equal("licence", request.RootElement.GetProperty("grantType").GetString());
        Assert.Equal("lic_0123", request.RootElement.GetProperty("licenceId").GetString());
        Assert.Equal(sent, request.RootElement.GetProperty("credential").GetString());
    }

    [Fact]
    public async Task A_credential_file_may_have_1024_bytes_and_no_more()
    {
        using var directory = new TempDirectory();
        string path = directory.Sub("licence.credential");
        var server = new TokenEndpoint();
        using var client = new HttpClient(server) { BaseAddress = new Uri("http://127.0.0.1:9/") };
        using var tokens = new LicenceCredentialTokenSource(client, "lic_0123", path);

        OwnerOnlyFile.Write(path, new string('c', 1023) + "\n");
        await tokens.GetTokenAsync(TestContext.Current.CancellationToken);
        Assert.Equal(1, server.Calls);

        tokens.Invalidate();
        OwnerOnlyFile.Write(path, new string('c', 1024) + "\n");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => tokens.GetTokenAsync(TestContext.Current.CancellationToken).AsTask());
        Assert.Contains("larger than 1024 bytes", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, server.Calls);
    }

    [Fact]
    public async Task A_credential_file_others_may_read_is_refused()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix permissions only");
            return;
        }

        using var directory = new TempDirectory();
        string path = directory.Sub("licence.credential");
        OwnerOnlyFile.Write(path, "cred_0123-abc\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupExecute);
        var server = new TokenEndpoint();
        using var client = new HttpClient(server) { BaseAddress = new Uri("http://127.0.0.1:9/") };
        using var tokens = new LicenceCredentialTokenSource(client, "lic_0123", path);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => tokens.GetTokenAsync(TestContext.Current.CancellationToken).AsTask());
        Assert.Contains("chmod 600", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, server.Calls);
    }

    /// <summary><c>POST /v1/token</c> in this process: keeps the request body and answers with a token whose <c>sub</c> is <c>device-7</c>.</summary>
    private sealed class TokenEndpoint : HttpMessageHandler
    {
        public string? Body { get; private set; }

        public int Calls { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Calls++;
            Assert.Equal("/v1/token", request.RequestUri!.AbsolutePath);
            Body = await request.Content!.ReadAsStringAsync(cancellationToken);
            string payload = System.Buffers.Text.Base64Url.EncodeToString("{\"sub\":\"device-7\"}"u8);
            string answer = $$"""{"accessToken":"e30.{{payload}}.c2ln","tokenType":"Bearer","expiresIn":900}""";
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(answer, Encoding.UTF8, "application/json") };
        }
    }
}
