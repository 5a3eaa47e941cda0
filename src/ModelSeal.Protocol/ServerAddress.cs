namespace ModelSeal.Protocol;

/// <summary>
/// The one rule for a key server address, applied by every client before any connection is made: <c>https://</c>, or
/// plain <c>http://</c> only to a loopback host (<c>localhost</c>, 127.0.0.0/8, <c>[::1]</c>; the server's own listening
/// rule), unless the caller explicitly allows insecure HTTP (a TLS-terminating proxy on the same network segment, a test
/// lab). Credentials, tokens and the publisher's data keys would otherwise cross the network in clear.
/// </summary>
internal static class ServerAddress
{
    /// <summary>Why <paramref name="server"/> may not be used, or null when it may.</summary>
    public static string? Refusal(Uri server, bool allowInsecureHttp)
    {
        ArgumentNullException.ThrowIfNull(server);
        if (!server.IsAbsoluteUri || (server.Scheme != Uri.UriSchemeHttps && server.Scheme != Uri.UriSchemeHttp))
        {
            return $"the key server address '{server}' is not an absolute https:// URL";
        }

        return server.Scheme == Uri.UriSchemeHttp && !server.IsLoopback && !allowInsecureHttp
            ? $"refusing plain http:// to '{server.Host}', which is not a loopback address: credentials, tokens and keys would cross the network unencrypted"
            : null;
    }
}
