namespace ModelSeal.Build;

/// <summary>The MSBuild error codes of the ModelSeal tasks (docs/getting-started.md, "Errors").</summary>
internal static class ErrorCodes
{
    /// <summary>No key source: neither ModelSealKeyFile nor ModelSealKeyServer is set.</summary>
    public const string NoKeySource = "MSEAL001";

    /// <summary>A model file is missing or cannot be read.</summary>
    public const string UnreadableModel = "MSEAL002";

    /// <summary>ModelId or ModelVersion is missing or not a valid identifier.</summary>
    public const string BadMetadata = "MSEAL003";

    /// <summary>The key file is missing, malformed or readable by other users.</summary>
    public const string BadKeyFile = "MSEAL004";

    /// <summary>Both a key file and a key server are set.</summary>
    public const string TwoKeySources = "MSEAL005";

    /// <summary>Key server: the admin credential variable is not named, not set or empty; or the URL is invalid or plain http:// to a host that is not loopback.</summary>
    public const string NoAdminCredential = "MSEAL006";

    /// <summary>The key server refused the request or could not be reached.</summary>
    public const string KeyServerError = "MSEAL007";

    /// <summary>Two models would be sealed to the same file.</summary>
    public const string DuplicateOutput = "MSEAL008";

    /// <summary>A plaintext model is still in an item that would copy, publish or embed it.</summary>
    public const string PlaintextWouldShip = "MSEAL009";

    /// <summary>This MSBuild cannot run the task (.NET Framework MSBuild older than 18).</summary>
    public const string UnsupportedMSBuild = "MSEAL010";

    /// <summary>Writing the sealed file failed.</summary>
    public const string WriteFailed = "MSEAL011";
}
