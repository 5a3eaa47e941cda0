using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Task = Microsoft.Build.Utilities.Task;

namespace ModelSeal.Build;

/// <summary>
/// The safety net after the targets removed the plaintext models from the item groups they know: fails the build
/// (MSEAL009) when an item that will be copied, published or embedded still points at a plaintext model — for
/// example one added by another package's targets after ModelSeal's, or under an item type ModelSeal does not know.
/// </summary>
public sealed class CheckNoPlaintext : Task
{
    /// <summary>The plaintext models (SealedModel items).</summary>
    [Required]
    public ITaskItem[] Models { get; set; } = [];

    /// <summary>The items about to be copied, published or embedded.</summary>
    public ITaskItem[] Items { get; set; } = [];

    /// <summary>What the items are for (copied to the output, published, embedded), for the message.</summary>
    public string Stage { get; set; } = "copied to the output";

    /// <inheritdoc />
    public override bool Execute()
    {
        var plaintext = new HashSet<string>(OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
        foreach (ITaskItem model in Models)
        {
            plaintext.Add(Path.GetFullPath(model.GetMetadata("FullPath")));
        }

        foreach (ITaskItem item in Items)
        {
            string path = Path.GetFullPath(item.GetMetadata("FullPath"));
            if (plaintext.Contains(path))
            {
                Log.LogError(
                    subcategory: "ModelSeal",
                    errorCode: ErrorCodes.PlaintextWouldShip,
                    helpKeyword: null,
                    file: null,
                    lineNumber: 0,
                    columnNumber: 0,
                    endLineNumber: 0,
                    endColumnNumber: 0,
                    message: $"The plaintext model '{item.ItemSpec}' would be {Stage}. It is a SealedModel, but an item added after ModelSeal's targets still includes it: remove it from that item group (<ItemType Remove=\"…\" />); only the sealed file may ship.");
            }
        }

        return !Log.HasLoggedErrors;
    }
}
