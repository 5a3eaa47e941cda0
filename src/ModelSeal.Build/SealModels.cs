using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Task = Microsoft.Build.Utilities.Task;
using ModelSeal.Protocol;

namespace ModelSeal.Build;

/// <summary>
/// Seals each model of <see cref="Models"/> (items with <c>ModelId</c>, <c>ModelVersion</c> and <c>SealedPath</c>
/// metadata) to its <c>SealedPath</c>, with the data key from a local key file or from a new version created on the
/// key server. The targets pass only the models whose sealed file is out of date. Secrets (the key, the admin
/// credential) are never logged; the admin credential is read from the environment variable named by
/// <see cref="AdminCredentialVariable"/>, never from a property.
/// </summary>
public sealed class SealModels : Task, ICancelableTask
{
    private volatile CancellationTokenSource? _cancel;
    private volatile bool _cancelled;

    /// <summary>The models to seal.</summary>
    [Required]
    public ITaskItem[] Models { get; set; } = [];

    /// <summary>A local key file (the format <c>modelseal keygen</c> writes).</summary>
    public string? KeyFile { get; set; }

    /// <summary>The key server's base URL; each model gets a new version there, whose key seals it.</summary>
    public string? KeyServer { get; set; }

    /// <summary>The name of the environment variable that holds the key server's admin credential.</summary>
    public string? AdminCredentialVariable { get; set; }

    /// <summary>The sealed files written.</summary>
    [Output]
    public ITaskItem[] SealedFiles { get; private set; } = [];

    /// <summary>Seams for tests: the environment and the key server's HTTP handler.</summary>
    internal Func<string, string?> GetEnvironmentVariable { get; set; } = Environment.GetEnvironmentVariable;

    internal HttpMessageHandler? KeyServerHandler { get; set; }

    /// <summary>
    /// Allows plain <c>http://</c> to a key server that is not on a loopback address (property
    /// <c>ModelSealAllowInsecureHttp</c>); off by default, since the admin credential and data keys would cross the network in clear.
    /// </summary>
    public bool AllowInsecureHttp { get; set; }

    /// <summary>
    /// The <c>kid</c> of the key server's answer key (property <c>ModelSealAnswerKey</c>, docs/protocol.md section 2.2): a new
    /// version's key is accepted only with its signature. Empty: learned from the server's JWKS (HTTPS or loopback only).
    /// </summary>
    public string? AnswerKey { get; set; }

    /// <inheritdoc />
    public void Cancel()
    {
        _cancelled = true;
        try
        {
            _cancel?.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <inheritdoc />
    public override bool Execute()
    {
        if (Models.Length == 0)
        {
            return true;
        }

        using var cancel = new CancellationTokenSource();
        _cancel = cancel;
        if (_cancelled)
        {
            return false;
        }

        try
        {
            return Run(cancel.Token);
        }
        finally
        {
            _cancel = null;
        }
    }

    private bool Run(CancellationToken cancellationToken)
    {
        List<ModelToSeal>? models = Validate();
        if (models is null || Log.HasLoggedErrors)
        {
            return false;
        }

        using IKeyProvider? keys = CreateKeyProvider();
        if (keys is null)
        {
            return false;
        }

        var written = new List<ITaskItem>();
        foreach (ModelToSeal model in models)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                return false;
            }

            if (Seal(model, keys, cancellationToken))
            {
                var item = new TaskItem(model.SealedPath);
                item.SetMetadata("SourceModel", model.Item.ItemSpec);
                written.Add(item);
            }
        }

        SealedFiles = [.. written];
        return !Log.HasLoggedErrors;
    }

    private List<ModelToSeal>? Validate()
    {
        bool hasKeyFile = !string.IsNullOrWhiteSpace(KeyFile), hasServer = !string.IsNullOrWhiteSpace(KeyServer);
        if (!hasKeyFile && !hasServer)
        {
            Error(ErrorCodes.NoKeySource, null, "No key source for sealing models: set the property ModelSealKeyFile (a key file from 'modelseal keygen') or ModelSealKeyServer (the key server's URL, with ModelSealAdminCredentialVariable naming the environment variable that holds the admin credential).");
            return null;
        }

        if (hasKeyFile && hasServer)
        {
            Error(ErrorCodes.TwoKeySources, null, "Both ModelSealKeyFile and ModelSealKeyServer are set: choose one key source.");
            return null;
        }

        var models = new List<ModelToSeal>();
        var outputs = new Dictionary<string, string>(OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
        foreach (ITaskItem item in Models)
        {
            string source = item.GetMetadata("FullPath");
            string modelId = item.GetMetadata("ModelId").Trim();
            string version = item.GetMetadata("ModelVersion").Trim();
            string sealedPath = item.GetMetadata("SealedPath");
            if (!Identifier.IsValid(modelId, Identifier.MaxIdLength))
            {
                Error(ErrorCodes.BadMetadata, item.ItemSpec, modelId.Length == 0
                    ? $"SealedModel '{item.ItemSpec}' has no ModelId metadata: add ModelId=\"…\" (letters, digits, '.', '_', '-'; at most {Identifier.MaxIdLength} characters)."
                    : $"SealedModel '{item.ItemSpec}': ModelId '{modelId}' is not a valid identifier (letters, digits, '.', '_', '-'; at most {Identifier.MaxIdLength} characters).");
                continue;
            }

            if (version.Length == 0 ? hasKeyFile : !Identifier.IsValid(version, Identifier.MaxVersionLength) || version == "latest")
            {
                Error(ErrorCodes.BadMetadata, item.ItemSpec, version.Length == 0
                    ? $"SealedModel '{item.ItemSpec}' has no ModelVersion metadata: with a key file it is required (with a key server it may be left out, and the server numbers the versions)."
                    : $"SealedModel '{item.ItemSpec}': ModelVersion '{version}' is not a valid version (letters, digits, '.', '_', '-'; at most {Identifier.MaxVersionLength} characters; not 'latest').");
                continue;
            }

            if (string.IsNullOrEmpty(sealedPath))
            {
                Error(ErrorCodes.BadMetadata, item.ItemSpec, $"SealedModel '{item.ItemSpec}' has no SealedPath (set by ModelSeal.Build.targets; do not call the task directly without it).");
                continue;
            }

            sealedPath = Path.GetFullPath(sealedPath);
            if (outputs.TryGetValue(sealedPath, out string? other))
            {
                Error(ErrorCodes.DuplicateOutput, item.ItemSpec, $"SealedModels '{other}' and '{item.ItemSpec}' would be sealed to the same file '{sealedPath}': give one of them another Link or LogicalName.");
                continue;
            }

            outputs.Add(sealedPath, item.ItemSpec);
            if (!File.Exists(source))
            {
                Error(ErrorCodes.UnreadableModel, item.ItemSpec, $"SealedModel '{item.ItemSpec}': the model file '{source}' does not exist.");
                continue;
            }

            models.Add(new ModelToSeal(item, source, modelId, version.Length == 0 ? null : version, sealedPath));
        }

        return models;
    }

    private IKeyProvider? CreateKeyProvider()
    {
        if (!string.IsNullOrWhiteSpace(KeyFile))
        {
            string path = Path.GetFullPath(KeyFile);
            try
            {
                return new KeyFileProvider(ModelSeal.KeyFile.Read(path));
            }
            catch (Exception e) when (e is ModelKeyException or IOException or UnauthorizedAccessException)
            {
                Error(ErrorCodes.BadKeyFile, null, e is FileNotFoundException or DirectoryNotFoundException
                    ? $"The key file '{path}' (ModelSealKeyFile) does not exist. Create one with 'modelseal keygen --out FILE', or fetch it from your secret store before the build."
                    : $"The key file '{path}' (ModelSealKeyFile) cannot be used: {e.Message}");
                return null;
            }
        }

        if (!Uri.TryCreate(KeyServer, UriKind.Absolute, out Uri? server) || (server.Scheme != Uri.UriSchemeHttps && server.Scheme != Uri.UriSchemeHttp))
        {
            Error(ErrorCodes.NoAdminCredential, null, $"ModelSealKeyServer '{KeyServer}' is not an absolute http(s) URL.");
            return null;
        }

        if (ServerAddress.Refusal(server, AllowInsecureHttp) is { } refusal)
        {
            Error(ErrorCodes.NoAdminCredential, null, $"ModelSealKeyServer: {refusal}. Use https://, or set ModelSealAllowInsecureHttp=true if TLS is terminated in front of that address.");
            return null;
        }

        if (string.IsNullOrWhiteSpace(AdminCredentialVariable))
        {
            Error(ErrorCodes.NoAdminCredential, null, "ModelSealKeyServer is set but ModelSealAdminCredentialVariable is not: name the environment variable that holds the key server's admin credential (the credential itself never goes into a property or onto the command line).");
            return null;
        }

        string? credential = GetEnvironmentVariable(AdminCredentialVariable);
        if (string.IsNullOrWhiteSpace(credential))
        {
            Error(ErrorCodes.NoAdminCredential, null, $"The environment variable '{AdminCredentialVariable}' (ModelSealAdminCredentialVariable) is not set or empty: set it to the key server's admin credential (the file it wrote at first start with --admin-credential-out, kept in your secret store).");
            return null;
        }

        var client = new KeyServerAdminClient(server, TimeSpan.FromSeconds(60), AllowInsecureHttp, KeyServerHandler) { PinnedAnswerKeyId = string.IsNullOrWhiteSpace(AnswerKey) ? null : AnswerKey.Trim() };
        return new KeyServerProvider(client, credential.Trim());
    }

    private bool Seal(ModelToSeal model, IKeyProvider keys, CancellationToken cancellationToken)
    {
        ModelKey key;
        string version;
        try
        {
            (key, version) = keys.GetKeyAsync(model.ModelId, model.Version, cancellationToken).GetAwaiter().GetResult();
        }
        catch (KeyServerException e)
        {
            Error(ErrorCodes.KeyServerError, model.Item.ItemSpec, $"SealedModel '{model.Item.ItemSpec}': {e.Message}");
            return false;
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        using (key)
        {
            string? directory = Path.GetDirectoryName(model.SealedPath);
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }

            FileStream source;
            try
            {
                source = new FileStream(model.SourcePath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Error(ErrorCodes.UnreadableModel, model.Item.ItemSpec, $"SealedModel '{model.Item.ItemSpec}': the model file '{model.SourcePath}' cannot be read: {e.Message}");
                return false;
            }

            using (source)
            {
                try
                {
                    var options = new SealOptions { ModelId = model.ModelId, ModelVersion = version };
                    SealedModelHeader header;
                    using (AtomicFile file = AtomicFile.Create(model.SealedPath, overwrite: true))
                    {
                        header = SealedModel.SealAsync(source, file.Stream, key, options, progress: null, cancellationToken).GetAwaiter().GetResult();
                        file.Commit();
                    }

                    Log.LogMessage(
                        MessageImportance.High,
                        "ModelSeal: sealed {0} -> {1} (model {2}, version {3}, key {4}, {5} bytes)",
                        model.Item.ItemSpec,
                        model.SealedPath,
                        header.ModelId,
                        header.ModelVersion,
                        header.KeyId,
                        header.PlaintextLength);
                    return true;
                }
                catch (OperationCanceledException)
                {
                    return false;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Error(ErrorCodes.WriteFailed, model.Item.ItemSpec, $"SealedModel '{model.Item.ItemSpec}': writing '{model.SealedPath}' failed: {e.Message}");
                    return false;
                }
            }
        }
    }

    private void Error(string code, string? file, string message) =>
        Log.LogError(subcategory: "ModelSeal", errorCode: code, helpKeyword: null, file: file, lineNumber: 0, columnNumber: 0, endLineNumber: 0, endColumnNumber: 0, message: message);

    private sealed record ModelToSeal(ITaskItem Item, string SourcePath, string ModelId, string? Version, string SealedPath);
}
