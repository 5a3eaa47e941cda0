using System.Text;

namespace ModelSeal.Tests;

public sealed class KeyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("modelseal-keys-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Key_bytes_leave_only_through_Export_and_are_zeroed_on_dispose()
    {
        var key = ModelKey.Generate("k1");
        byte[] raw = new byte[32];
        key.Export(raw);
        Assert.DoesNotContain(Convert.ToHexString(raw), key.ToString(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Convert.ToBase64String(raw), key.ToString(), StringComparison.Ordinal);
        Assert.Equal("ModelKey { KeyId = k1 }", key.ToString());
        Assert.Throws<ArgumentException>(() => key.Export(new byte[31]));

        key.Dispose();
        Assert.Throws<ObjectDisposedException>(() => key.Export(new byte[32]));
        Assert.Throws<ObjectDisposedException>(() => _ = key.Bytes.Length);
    }

    [Fact]
    public void Imported_keys_must_be_32_bytes()
    {
        Assert.Contains("32 bytes; got 16", Assert.Throws<ModelKeyException>(() => ModelKey.Import(new byte[16], "k")).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ModelKey.Import(new byte[32], "bad id"));
    }

    [Fact]
    public void Key_files_round_trip_owner_only_and_refuse_to_overwrite()
    {
        string path = Path.Combine(_dir, "a.key");
        using var key = ModelKey.Generate("local-1");
        KeyFile.Write(path, key);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        using ModelKey read = KeyFile.Read(path);
        Assert.Equal("local-1", read.KeyId);
        Assert.Equal(Export(key), Export(read));
        string text = File.ReadAllText(path);
        Assert.StartsWith("# ModelSeal data key.", text, StringComparison.Ordinal);
        Assert.Contains($"key: {Convert.ToHexStringLower(Export(key))}\n", text, StringComparison.Ordinal);

        using var other = ModelKey.Generate("local-2");
        Assert.Throws<IOException>(() => KeyFile.Write(path, other));
        Assert.Equal(text, File.ReadAllText(path));
        KeyFile.Write(path, other, overwrite: true);
        using ModelKey replaced = KeyFile.Read(path);
        Assert.Equal("local-2", replaced.KeyId);
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void Key_files_readable_by_others_are_refused_with_a_chmod_hint()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix permissions only");
            return;
        }

        string path = Path.Combine(_dir, "open.key");
        using var key = ModelKey.Generate("k");
        KeyFile.Write(path, key);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var e = Assert.Throws<ModelKeyException>(() => KeyFile.Read(path));
        Assert.Contains("chmod 600", e.Message, StringComparison.Ordinal);
        Assert.Contains("644", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "incomplete")]
    [InlineData("modelseal-key-v2\n", "first line")]
    [InlineData("modelseal-key-v1\nkey-id: a/b\n", "not a valid identifier")]
    [InlineData("modelseal-key-v1\nid: k\n", "second line")]
    [InlineData("modelseal-key-v1\nkey-id: k\nkey: 00\n", "third line")]
    [InlineData("modelseal-key-v1\nkey-id: k\nkey: zz00000000000000000000000000000000000000000000000000000000000000\n", "64 hexadecimal")]
    [InlineData("modelseal-key-v1\nkey-id: k\nkey: 0000000000000000000000000000000000000000000000000000000000000000\nmore\n", "after the key")]
    public void Malformed_key_files_are_refused_without_echoing_their_content(string content, string problem)
    {
        string path = Path.Combine(_dir, "bad.key");
        File.WriteAllText(path, content);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        var e = Assert.Throws<ModelKeyException>(() => KeyFile.Read(path));
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
        Assert.Contains("modelseal keygen", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("0000000000", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Oversized_key_files_are_refused()
    {
        string path = Path.Combine(_dir, "big.key");
        File.WriteAllText(path, "modelseal-key-v1\n" + new string('#', 5000));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        Assert.Contains("larger than 4096", Assert.Throws<ModelKeyException>(() => KeyFile.Read(path)).Message, StringComparison.Ordinal);
    }

    private static byte[] Export(ModelKey key)
    {
        byte[] raw = new byte[32];
        key.Export(raw);
        return raw;
    }
}
