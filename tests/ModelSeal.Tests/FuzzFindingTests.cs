namespace ModelSeal.Tests;

/// <summary>
/// Regression tests for the inputs the fuzz campaigns found (docs/fuzzing.md, "Findings"); each input is kept in
/// tests/vectors/fuzz as afl-fuzz saved it. They are opened with the key of tests/vectors/modelseal, the fuzz key.
/// </summary>
public sealed class FuzzFindingTests
{
    private static readonly DecryptOptions Sequential = new() { MaxDegreeOfParallelism = 1 };

    private static ModelKey FuzzKey() =>
        ModelKey.Import(Convert.FromHexString("ba90f7bf9a655a83818ff6d82b091d4cd32607dccd2de78f2ac1b07d4cf70f08"), "test-key-1");

    private static byte[] Finding(string name) => File.ReadAllBytes(RepoPaths.Vectors("fuzz", name));

    /// <summary>
    /// Finding 1 (model target): a header declaring a 2^39-byte model, read from a forward-only source, made whole-model
    /// decryption throw NotSupportedException, which its documentation did not list. It is the deliberate answer (the
    /// model cannot fit one array; stream it), now documented; a seekable source fails authentication (length check)
    /// first, and the in-memory overload too.
    /// </summary>
    [Fact]
    public async Task A_header_declaring_a_model_larger_than_an_array_is_NotSupported_on_a_forward_only_source()
    {
        byte[] input = Finding("model-forward-only-length-2pow39.mseal");
        using ModelKey key = FuzzKey();
        Assert.True(SealedModelHeader.Parse(input).PlaintextLength > Array.MaxLength);

        var e = await Assert.ThrowsAsync<NotSupportedException>(() => SealedModel.DecryptAsync(new ForwardOnlyStream(input), key, Sequential));
        Assert.Contains("OpenReadAsync", e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedModel.DecryptAsync(new MemoryStream(input), key, Sequential));
        await Assert.ThrowsAsync<SealedModelAuthenticationException>(() => SealedModel.DecryptAsync(input.AsMemory(), key, Sequential));
    }
}
