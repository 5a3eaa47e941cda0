namespace ModelSeal.TestKit;

/// <summary>The repository's files, found by walking up from the test's output directory to ModelSeal.slnx.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ModelSeal.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Cannot find the repository root (ModelSeal.slnx) above " + AppContext.BaseDirectory);
    });

    /// <summary>The repository root: the directory holding ModelSeal.slnx.</summary>
    public static string Root => RootPath.Value;

    /// <summary>The sample model shipped in the repository (PaddleOCR's text-direction classifier, samples/models).</summary>
    public static string SampleModel => SampleModels("ch_ppocr_mobile_v2.0_cls_infer.onnx");

    /// <summary>A path under tests/vectors.</summary>
    public static string Vectors(params string[] parts) => Path.Combine([Root, "tests", "vectors", .. parts]);

    /// <summary>A model under tests/models.</summary>
    public static string TestModels(string name) => Path.Combine(Root, "tests", "models", name);

    /// <summary>A model under samples/models.</summary>
    public static string SampleModels(string name) => Path.Combine(Root, "samples", "models", name);
}
