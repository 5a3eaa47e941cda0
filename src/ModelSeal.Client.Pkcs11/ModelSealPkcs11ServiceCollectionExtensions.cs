using Microsoft.Extensions.DependencyInjection.Extensions;
using ModelSeal.Client;
using ModelSeal.Client.Pkcs11;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Makes a PKCS#11 token hold the ModelSeal client's device key (in this namespace by the .NET convention for DI extensions).</summary>
public static class ModelSealPkcs11ServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="Pkcs11DeviceKeyStore"/> as the client's <see cref="IDeviceKeyStore"/> (replacing the file or
    /// in-memory store that <c>AddModelSeal</c> would choose; call it before or after <c>AddModelSeal</c>). The options
    /// are checked now; the token is opened at the first key request. The container disposes the store.
    /// </summary>
    /// <exception cref="ArgumentException">The options are incomplete (<see cref="Pkcs11DeviceKeyOptions.Validate"/>).</exception>
    public static IServiceCollection AddModelSealPkcs11DeviceKey(this IServiceCollection services, Action<Pkcs11DeviceKeyOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new Pkcs11DeviceKeyOptions();
        configure(options);
        options.Validate();
        services.Replace(ServiceDescriptor.Singleton(_ => new Pkcs11DeviceKeyStore(options)));
        services.Replace(ServiceDescriptor.Singleton<IDeviceKeyStore>(sp => sp.GetRequiredService<Pkcs11DeviceKeyStore>()));
        return services;
    }
}
