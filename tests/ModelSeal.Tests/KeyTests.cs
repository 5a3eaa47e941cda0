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
    [InlineData("modelseal-key-v1\r\nkey-id: k\r\nkey: 0000000000000000000000000000000000000000000000000000000000000000\r\n", "first line")]
    [InlineData("modelseal-key-v1\nkey-id: k\nkey: 0000000000000000000000000000000000000000000000000000000000000000\r\n", "third line")]
    [InlineData("\uFEFFmodelseal-key-v1\nkey-id: k\nkey: 0000000000000000000000000000000000000000000000000000000000000000\n", "first line")]
    [InlineData("MODELSEAL-KEY-V1\nkey-id: k\nkey: 0000000000000000000000000000000000000000000000000000000000000000\n", "first line")]
    [InlineData(" # indented\nmodelseal-key-v1\nkey-id: k\nkey: 0000000000000000000000000000000000000000000000000000000000000000\n", "first line")]
    [InlineData("modelseal-key-v1\nKey-Id: k\nkey: 0000000000000000000000000000000000000000000000000000000000000000\n", "second line")]
    [InlineData("modelseal-key-v1\nkey-id:k\nkey: 0000000000000000000000000000000000000000000000000000000000000000\n", "second line")]
    [InlineData("modelseal-key-v1\nkey-id:  k\nkey: 0000000000000000000000000000000000000000000000000000000000000000\n", "not a valid identifier")]
    [InlineData("modelseal-key-v1\nkey-id: k \nkey: 0000000000000000000000000000000000000000000000000000000000000000\n", "not a valid identifier")]
    [InlineData("modelseal-key-v1\nkey-id: k\nkey:0000000000000000000000000000000000000000000000000000000000000000\n", "third line")]
    [InlineData("modelseal-key-v1\nkey-id: k\nkey: 0000000000000000000000000000000000000000000000000000000000000000 \n", "third line")]
    [InlineData("modelseal-key-v1\nkey-id: k\nKEY: 0000000000000000000000000000000000000000000000000000000000000000\n", "third line")]
    [InlineData("key-id: k\nmodelseal-key-v1\nkey: 0000000000000000000000000000000000000000000000000000000000000000\n", "first line")]
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

    /// <summary>The grammar of docs/format.md section 6, as far as it lets a file through.</summary>
    [Theory]
    [InlineData("modelseal-key-v1\nkey-id: k.1\nkey: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")]
    [InlineData("modelseal-key-v1\nkey-id: k.1\nkey: 00112233445566778899AABBCCDDEEFF00112233445566778899aAbBcCdDeEfF\n")]
    [InlineData("\n# before\n\nmodelseal-key-v1\n#between\n\nkey-id: k.1\n# caf\u00e9, any bytes \t \r\nkey: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n\n# after\n#")]
    public void Key_files_may_lack_the_final_newline_use_either_hex_case_and_have_comments_and_empty_lines_anywhere(string content)
    {
        string path = Path.Combine(_dir, "good.key");
        File.WriteAllText(path, content);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        using ModelKey key = KeyFile.Read(path);
        Assert.Equal("k.1", key.KeyId);
        Assert.Equal(Convert.FromHexString("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"), Export(key));
    }

    [Fact]
    public void A_key_file_of_exactly_4096_bytes_is_read()
    {
        string path = Path.Combine(_dir, "full.key");
        string body = $"modelseal-key-v1\nkey-id: k\nkey: {new string('0', 64)}\n";
        File.WriteAllText(path, "#" + new string('x', KeyFile.MaxSize - body.Length - 2) + "\n" + body);
        Assert.Equal(KeyFile.MaxSize, new FileInfo(path).Length);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        using ModelKey key = KeyFile.Read(path);
        Assert.Equal("k", key.KeyId);
        File.AppendAllText(path, "\n");
        Assert.Contains("larger than 4096", Assert.Throws<ModelKeyException>(() => KeyFile.Read(path)).Message, StringComparison.Ordinal);
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
