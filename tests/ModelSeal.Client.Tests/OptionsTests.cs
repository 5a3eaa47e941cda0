using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace ModelSeal.Client.Tests;

public sealed class OptionsTests
{
    [Fact]
    public async Task A_missing_ServerUrl_fails_on_start()
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddModelSeal(_ => { });
        using IHost host = builder.Build();
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("ServerUrl", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ftp://example.com/", "http or https")]
    [InlineData("not a url", "http or https")]
    public async Task An_invalid_ServerUrl_from_configuration_fails_on_start(string url, string message)
    {
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["ModelSeal:ServerUrl"] = url })
            .Build();
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddModelSeal(configuration.GetSection("ModelSeal"));
        using IHost host = builder.Build();
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://keys.example.com/", null, false)]
    [InlineData("http://192.168.1.20:5380/", null, false)]
    [InlineData("http://keys.example.com/", "true", true)]
    [InlineData("https://keys.example.com/", null, true)]
    [InlineData("http://127.0.0.2:5380/", null, true)]
    [InlineData("http://localhost:5380/", null, true)]
    [InlineData("http://[::1]:5380/", null, true)]
    public async Task Plain_http_is_refused_on_start_unless_loopback_or_explicitly_allowed(string url, string? allow, bool starts)
    {
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["ModelSeal:ServerUrl"] = url, ["ModelSeal:AllowInsecureHttp"] = allow })
            .Build();
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddModelSeal(configuration.GetSection("ModelSeal"));
        using IHost host = builder.Build();
        if (starts)
        {
            await host.StartAsync(TestContext.Current.CancellationToken);
            await host.StopAsync(TestContext.Current.CancellationToken);
        }
        else
        {
            var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
            Assert.Contains("refusing plain http://", e.Message, StringComparison.Ordinal);
            Assert.Contains("AllowInsecureHttp", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_valid_configuration_starts_and_resolves_the_key_source()
    {
        using var directory = new TempDirectory();
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["ModelSeal:ServerUrl"] = "https://keys.example.com",
                ["ModelSeal:LicenceId"] = "lic_1",
                ["ModelSeal:CredentialFile"] = directory.Sub("licence.credential"),
                ["ModelSeal:AttemptTimeout"] = "00:00:01",
            })
            .Build();
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddModelSeal(configuration.GetSection("ModelSeal"));
        using IHost host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        Assert.IsType<KeyServerKeySource>(host.Services.GetRequiredService<IModelKeySource>());
        Assert.Equal(TimeSpan.FromSeconds(1), host.Services.GetRequiredService<IOptions<ModelSealClientOptions>>().Value.AttemptTimeout);
        await host.StopAsync(TestContext.Current.CancellationToken);
    }
}
