namespace ModelSeal;

/// <summary>Base class of every error ModelSeal reports about its inputs (files, keys, headers).</summary>
public abstract class ModelSealException : Exception
{
    private protected ModelSealException(string message)
        : base(message)
    {
    }

    private protected ModelSealException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// The input is not a well-formed sealed model: not one at all, an unsupported format version, or a malformed header.
/// Found without a key; the message says what was expected and what was found.
/// </summary>
public class SealedModelFormatException : ModelSealException
{
    internal SealedModelFormatException(string message)
        : base(message)
    {
    }
}

/// <summary>The input does not start with the sealed-model magic bytes: it is not a sealed model.</summary>
public sealed class NotASealedModelException : SealedModelFormatException
{
    internal NotASealedModelException(string message)
        : base(message)
    {
    }
}

/// <summary>The input is a sealed model of a format version this library does not read.</summary>
public sealed class UnsupportedFormatVersionException : SealedModelFormatException
{
    internal UnsupportedFormatVersionException(int version)
        : base($"Sealed model format version {version} is not supported; this version of ModelSeal reads format version {SealedModelHeader.FormatVersion}. Upgrade ModelSeal to open this file.")
    {
        Version = version;
    }

    /// <summary>The format version found in the file.</summary>
    public int Version { get; }
}

/// <summary>
/// The sealed model could not be authenticated. Deliberately vague: the key is wrong, or the file was altered,
/// truncated or extended. No plaintext has been released when this is thrown.
/// </summary>
public sealed class SealedModelAuthenticationException : ModelSealException
{
    internal const string Text =
        "The sealed model could not be authenticated: the key is wrong, or the file was altered or truncated.";

    internal SealedModelAuthenticationException()
        : base(Text)
    {
    }
}

/// <summary>A key is unusable: a malformed or unsafe key file, a key of the wrong size, or a key for another model.</summary>
public sealed class ModelKeyException : ModelSealException
{
    internal ModelKeyException(string message)
        : base(message)
    {
    }

    internal ModelKeyException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// An HPKE-sealed message could not be opened. Deliberately vague: it was sealed to another key, with another
/// info or associated data, or it was altered.
/// </summary>
public sealed class HpkeOpenException : ModelSealException
{
    internal HpkeOpenException()
        : base("The sealed key could not be opened: it was sealed to another device key or for another model, or it was altered.")
    {
    }
}
