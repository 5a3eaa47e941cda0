using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Task = Microsoft.Build.Utilities.Task;

namespace ModelSeal.Build;

/// <summary>
/// Development convenience (ModelSealGenerateKeyFile=true): creates the key file when it does not exist, owner-only,
/// with a new random key. A real app's key comes from the key server or a secret store, never from the build.
/// </summary>
public sealed class GenerateKeyFile : Task
{
    /// <summary>The key file to create when missing.</summary>
    [Required]
    public string Path { get; set; } = string.Empty;

    /// <inheritdoc />
    public override bool Execute()
    {
        string path = System.IO.Path.GetFullPath(Path);
        if (File.Exists(path))
        {
            return true;
        }

        try
        {
            string? directory = System.IO.Path.GetDirectoryName(path);
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }

            string keyId = "dev-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
            using ModelKey key = ModelKey.Generate(keyId);
            ModelSeal.KeyFile.Write(path, key);
            Log.LogMessage(MessageImportance.High, "ModelSeal: created the development key file {0} (key id {1}). For development only: release builds take the key from the key server or a secret store.", path, keyId);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.LogError("ModelSeal", ErrorCodes.BadKeyFile, null, null, 0, 0, 0, 0, $"Cannot create the key file '{path}': {e.Message}");
            return false;
        }
    }
}
