using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.HttpOverrides;
using ModelSeal.Server.Configuration;

namespace ModelSeal.Server.Http;

/// <summary>
/// The client address of a request: the connection's peer, or — when that peer is one of the configured
/// <see cref="ServerOptions.TrustedProxies"/> — the right-most address of <c>X-Forwarded-For</c> that is not a trusted
/// proxy (ASP.NET Core's forwarded-headers middleware sets it as the connection's remote address, so the rate limits
/// and the audit's <c>client</c> both see it); and the partition of the per-address rate limit it counts against.
/// </summary>
internal static class ClientAddresses
{
    /// <summary>
    /// The forwarded-headers options for <paramref name="trustedProxies"/> (validated): only <c>X-Forwarded-For</c>,
    /// walked from the right through every trusted proxy (no hop limit), and none of the framework's default loopback
    /// proxies.
    /// </summary>
    public static ForwardedHeadersOptions ForwardedHeaders(IEnumerable<string> trustedProxies)
    {
        var forwarded = new ForwardedHeadersOptions
        {
            ForwardedHeaders = Microsoft.AspNetCore.HttpOverrides.ForwardedHeaders.XForwardedFor,
            ForwardLimit = null,
            RequireHeaderSymmetry = false,
        };
        forwarded.KnownProxies.Clear();
        forwarded.KnownIPNetworks.Clear();
        foreach (string proxy in trustedProxies)
        {
            if (proxy.Contains('/', StringComparison.Ordinal))
            {
                forwarded.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(proxy.Trim()));
            }
            else
            {
                forwarded.KnownProxies.Add(IPAddress.Parse(proxy.Trim()));
            }
        }

        return forwarded;
    }

    /// <summary>
    /// The rate-limit partition of a client address: an IPv4 address as it is (an IPv4-mapped IPv6 address
    /// <c>::ffff:a.b.c.d</c> counts as <c>a.b.c.d</c>), the IPv6 loopback as <c>::1</c>, and any other IPv6 address as
    /// its /64 prefix (<c>2001:db8:1:2::/64</c>; one site or host usually holds a whole /64, so counting single
    /// addresses would let it multiply its limit). Link-local addresses (<c>fe80::/64</c>) therefore share one
    /// partition, whatever their zone. No address (not a TCP connection) is <c>unknown</c>.
    /// </summary>
    public static string Partition(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return address.ToString();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return "unknown";
        }

        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out int written) || written != 16)
        {
            return "unknown";
        }

        var unscoped = new IPAddress(bytes);
        if (unscoped.Equals(IPAddress.IPv6Loopback))
        {
            return "::1";
        }

        bytes[8..].Clear();
        return new System.Net.IPNetwork(new IPAddress(bytes), 64).ToString();
    }
}
