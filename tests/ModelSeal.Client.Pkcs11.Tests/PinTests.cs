using Net.Pkcs11Interop.Common;

namespace ModelSeal.Client.Pkcs11.Tests;

/// <summary>
/// Runs alone, after the parallel tests: PKCS#11 login state is per process, so a wrong PIN is only checked by the token
/// when no other store of this process is logged in to it.
/// </summary>
[CollectionDefinition(nameof(LoginState), DisableParallelization = true)]
public sealed class LoginState;

[Collection(nameof(LoginState))]
public sealed class PinTests
{
    [Fact]
    public async Task A_wrong_PIN_is_PinRejected_and_the_message_names_where_the_PIN_came_from_but_not_the_PIN()
    {
        Pkcs11DeviceKeyOptions options = TestToken.Options();
        Assert.False(ModelSeal.Pkcs11.Pkcs11Module.IsLoaded(options.ModulePath!), "A store of an earlier test was not disposed: this process is still logged in to the token.");
        using var directory = new TempDirectory();
        string wrongPin = "wrong-" + TestToken.Pin;
        OwnerOnlyFile.Write(directory.Sub("wrong.pin"), wrongPin);
        using var store = new Pkcs11DeviceKeyStore(new Pkcs11DeviceKeyOptions { ModulePath = options.ModulePath, TokenLabel = options.TokenLabel, KeyLabel = options.KeyLabel, PinFile = directory.Sub("wrong.pin") });
        Pkcs11DeviceKeyException e = await Assert.ThrowsAsync<Pkcs11DeviceKeyException>(() => store.GetOrCreateAsync(TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(Pkcs11DeviceKeyError.PinRejected, e.Error);
        Assert.Equal(CKR.CKR_PIN_INCORRECT, Assert.IsType<Pkcs11Exception>(e.InnerException).RV);
        Assert.Contains(directory.Sub("wrong.pin"), e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(wrongPin, e.ToString(), StringComparison.Ordinal);
        Assert.False(ModelSeal.Pkcs11.Pkcs11Module.IsLoaded(options.ModulePath!), "The failed store did not release the module.");
    }
}
