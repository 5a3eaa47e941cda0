using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Task = System.Threading.Tasks.Task;

namespace ModelSeal.Build.Tests;

/// <summary>The sealing task with a key file, hosted by a recording build engine.</summary>
public sealed class SealModelsTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly RecordingBuildEngine _engine = new();

    public void Dispose() => _directory.Dispose();

    private string KeyFilePath()
    {
        string path = _directory.Sub("dev.key");
        if (!File.Exists(path))
        {
            using ModelKey key = ModelKey.Generate("test-key");
            KeyFile.Write(path, key);
        }

        return path;
    }

    private TaskItem Model(string? id = "classifier", string? version = "3", string? source = null, string sealedName = "classifier.onnx.mseal")
    {
        var item = new TaskItem(source ?? RepoPaths.SampleModel);
        if (id is not null)
        {
            item.SetMetadata("ModelId", id);
        }

        if (version is not null)
        {
            item.SetMetadata("ModelVersion", version);
        }

        item.SetMetadata("SealedPath", _directory.Sub("out", sealedName));
        return item;
    }

    private SealModels NewTask(params ITaskItem[] models) => new() { BuildEngine = _engine, Models = models };

    private void AssertFailsWith(SealModels task, string code)
    {
        Assert.False(task.Execute(), _engine.AllText);
        Assert.Contains(_engine.Errors, e => e.Code == code);
        Assert.All(_engine.Errors, e => Assert.Equal(code, e.Code));
        Assert.False(Directory.Exists(_directory.Sub("out")) && Directory.EnumerateFiles(_directory.Sub("out")).Any(), "nothing is written on failure");
    }

    [Fact]
    public async Task Seals_a_model_that_opens_with_the_key_and_records_id_and_version()
    {
        SealModels task = NewTask(Model());
        task.KeyFile = KeyFilePath();
        Assert.True(task.Execute(), _engine.AllText);
        Assert.Empty(_engine.Errors);
        string sealedPath = Assert.Single(task.SealedFiles).ItemSpec;
        Assert.Equal(_directory.Sub("out", "classifier.onnx.mseal"), sealedPath);

        await using FileStream file = File.OpenRead(sealedPath);
        using ModelKey key = KeyFile.Read(KeyFilePath());
        using DecryptedModel model = await SealedModel.DecryptAsync(file, key, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal("classifier", model.Header.ModelId);
        Assert.Equal("3", model.Header.ModelVersion);
        Assert.Equal("test-key", model.Header.KeyId);
        Assert.Equal(ModelContentType.Onnx, model.Header.ContentType);
        Assert.True(model.Span.SequenceEqual(File.ReadAllBytes(RepoPaths.SampleModel)));
        Assert.Contains(_engine.Messages, m => m.Contains("sealed", StringComparison.Ordinal));
        Assert.DoesNotContain(_engine.Messages, m => m.Contains(File.ReadAllText(KeyFilePath()).Split("key: ")[1].Trim(), StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void No_key_source_is_MSEAL001()
    {
        AssertFailsWith(NewTask(Model()), "MSEAL001");
        Assert.Contains("ModelSealKeyFile", _engine.Errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_model_is_MSEAL002()
    {
        SealModels task = NewTask(Model(source: _directory.Sub("missing.onnx")));
        task.KeyFile = KeyFilePath();
        AssertFailsWith(task, "MSEAL002");
        Assert.Contains("missing.onnx", _engine.Errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_that_is_a_directory_is_MSEAL002()
    {
        Directory.CreateDirectory(_directory.Sub("model.onnx"));
        SealModels task = NewTask(Model(source: _directory.Sub("model.onnx")));
        task.KeyFile = KeyFilePath();
        AssertFailsWith(task, "MSEAL002");
    }

    [Theory]
    [InlineData(null, "3", "no ModelId")]
    [InlineData("", "3", "no ModelId")]
    [InlineData("bad id!", "3", "not a valid identifier")]
    [InlineData("classifier", null, "no ModelVersion")]
    [InlineData("classifier", "1/2", "not a valid version")]
    [InlineData("classifier", "latest", "not a valid version")]
    public void Bad_metadata_is_MSEAL003(string? id, string? version, string message)
    {
        SealModels task = NewTask(Model(id, version));
        task.KeyFile = KeyFilePath();
        AssertFailsWith(task, "MSEAL003");
        Assert.Contains(message, _engine.Errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_key_file_is_MSEAL004()
    {
        SealModels task = NewTask(Model());
        task.KeyFile = _directory.Sub("nowhere.key");
        AssertFailsWith(task, "MSEAL004");
        Assert.Contains("modelseal keygen", _engine.Errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_malformed_key_file_is_MSEAL004()
    {
        string path = _directory.Sub("bad.key");
        OwnerOnlyFile.Write(path, "not a key\n");
        SealModels task = NewTask(Model());
        task.KeyFile = path;
        AssertFailsWith(task, "MSEAL004");
    }

    [Fact]
    public void A_key_file_readable_by_others_is_MSEAL004()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix file modes only");
            return;
        }

        string path = KeyFilePath();
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        SealModels task = NewTask(Model());
        task.KeyFile = path;
        AssertFailsWith(task, "MSEAL004");
        Assert.Contains("chmod 600", _engine.Errors[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Both_key_sources_are_MSEAL005()
    {
        SealModels task = NewTask(Model());
        task.KeyFile = KeyFilePath();
        task.KeyServer = "http://127.0.0.1:1";
        AssertFailsWith(task, "MSEAL005");
    }

    [Fact]
    public void Two_models_sealed_to_one_file_are_MSEAL008()
    {
        SealModels task = NewTask(Model("a", "1"), Model("b", "1"));
        task.KeyFile = KeyFilePath();
        AssertFailsWith(task, "MSEAL008");
    }

    [Fact]
    public void Every_bad_model_is_reported_and_none_is_sealed()
    {
        SealModels task = NewTask(Model("ok", "1", sealedName: "ok.mseal"), Model("bad id", "1", sealedName: "a.mseal"), Model("c", "1", source: _directory.Sub("gone.onnx"), sealedName: "c.mseal"));
        task.KeyFile = KeyFilePath();
        Assert.False(task.Execute());
        Assert.Equal(["MSEAL003", "MSEAL002"], _engine.Errors.Select(e => e.Code));
        Assert.False(File.Exists(_directory.Sub("out", "ok.mseal")));
    }

    [Fact]
    public void No_models_is_success_without_a_key_source()
    {
        Assert.True(NewTask().Execute());
        Assert.Empty(_engine.Errors);
    }
}

/// <summary>The safety net and the development key.</summary>
public sealed class HelperTaskTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly RecordingBuildEngine _engine = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void CheckNoPlaintext_matches_any_spelling_of_a_models_path_as_MSEAL009()
    {
        string models = _directory.Sub("Models");
        Directory.CreateDirectory(models);
        File.WriteAllBytes(Path.Combine(models, "a.onnx"), [1, 2, 3]);
        string roundabout = Path.Combine(_directory.Path, "Models", "..", "Models", "a.onnx");
        var task = new CheckNoPlaintext
        {
            BuildEngine = _engine,
            Models = [new TaskItem(Path.Combine(models, "a.onnx"))],
            Items = [new TaskItem(Path.Combine(models, "other.onnx")), new TaskItem(roundabout)],
            Stage = "published",
        };
        Assert.False(task.Execute());
        BuildErrorEventArgs error = Assert.Single(_engine.Errors);
        Assert.Equal("MSEAL009", error.Code);
        Assert.Contains("published", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckNoPlaintext_passes_when_only_other_files_ship()
    {
        var task = new CheckNoPlaintext
        {
            BuildEngine = _engine,
            Models = [new TaskItem(_directory.Sub("a.onnx"))],
            Items = [new TaskItem(_directory.Sub("a.onnx.mseal")), new TaskItem(_directory.Sub("b.onnx"))],
        };
        Assert.True(task.Execute());
        Assert.Empty(_engine.Errors);
    }

    [Fact]
    public void GenerateKeyFile_creates_an_owner_only_key_once()
    {
        string path = _directory.Sub("obj", "dev.key");
        Assert.True(new GenerateKeyFile { BuildEngine = _engine, Path = path }.Execute());
        using (ModelKey key = KeyFile.Read(path))
        {
            Assert.StartsWith("dev-", key.KeyId, StringComparison.Ordinal);
        }

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        byte[] first = File.ReadAllBytes(path);
        Assert.True(new GenerateKeyFile { BuildEngine = _engine, Path = path }.Execute());
        Assert.Equal(first, File.ReadAllBytes(path));
    }
}
