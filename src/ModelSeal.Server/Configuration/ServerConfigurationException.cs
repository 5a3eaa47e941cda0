namespace ModelSeal.Server.Configuration;

/// <summary>
/// The key server refuses to start: its configuration or data directory is missing, malformed or unsafe. The message
/// says what is wrong and how to fix it; it never contains key material.
/// </summary>
public sealed class ServerConfigurationException : Exception
{
    /// <summary>Creates the exception with a generic message.</summary>
    public ServerConfigurationException()
        : base("The key server configuration is invalid.")
    {
    }

    /// <summary>Creates the exception with a message that says what to fix.</summary>
    public ServerConfigurationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message that says what to fix, and its cause.</summary>
    public ServerConfigurationException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
