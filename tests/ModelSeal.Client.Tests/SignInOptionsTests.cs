using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace ModelSeal.Client.Tests;

/// <summary>AddModelSealSignIn: no licence credential needed, and none accepted beside it.</summary>
public sealed class SignInOptionsTests
{
    private static readonly SignInTokenCallback Callback = (_, _) => ValueTask.FromResult("unused");

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task With_the_apps_sign_in_a_configuration_without_licence_or_credential_file_starts(bool signInFirst)
    {
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["ModelSeal:ServerUrl"] = "https://keys.example.com" })
            .Build();
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        if (signInFirst)
        {
            builder.Services.AddModelSealSignIn(Callback);
        }

        builder.Services.AddModelSeal(configuration.GetSection("ModelSeal"));
        if (!signInFirst)
        {
            builder.Services.AddModelSealSignIn(_ => Callback);
        }

        using IHost host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        Assert.IsType<SignInTokenSource>(host.Services.GetRequiredService<ITokenSource>());
        Assert.IsType<KeyServerKeySource>(host.Services.GetRequiredService<IModelKeySource>());
        await host.StopAsync(TestContext.Current.CancellationToken);
    }

    [Theory]
    [InlineData("ModelSeal:CredentialFile")]
    [InlineData("ModelSeal:LicenceId")]
    public async Task A_licence_credential_beside_the_apps_sign_in_fails_on_start(string key)
    {
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["ModelSeal:ServerUrl"] = "https://keys.example.com",
                ["ModelSeal:LicenceId"] = "lic_1",
                ["ModelSeal:CredentialFile"] = "licence.credential",
                [key] = null,
            })
            .Build();
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddModelSeal(configuration.GetSection("ModelSeal"));
        builder.Services.AddModelSealSignIn(Callback);
        using IHost host = builder.Build();
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("AddModelSealSignIn", e.Message, StringComparison.Ordinal);
        Assert.Contains("remove them", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_sign_in_the_licence_credential_configuration_still_starts()
    {
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddModelSeal(o => (o.ServerUrl, o.LicenceId, o.CredentialFile) = ("https://keys.example.com", "lic_1", "licence.credential"));
        using IHost host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        Assert.IsType<LicenceCredentialTokenSource>(host.Services.GetRequiredService<ITokenSource>());
        await host.StopAsync(TestContext.Current.CancellationToken);
    }
}
