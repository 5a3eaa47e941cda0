using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Files;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The admin credential is not in the data directory: written once to AdminCredentialOut at first start, only its hash
/// and epoch in the database; an old admin.credential is hashed in and deleted; a rotation refuses every earlier admin
/// token, cached ones included.
/// </summary>
public sealed class AdminCredentialTests
{
    [Fact]
    [Trait("Store", "sqlite")]
    [Trait("MasterKey", "file")]
    public void A_first_start_without_AdminCredentialOut_or_with_an_unusable_one_is_refused()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");

        var e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = data, Urls = "http://127.0.0.1:0" }));
        Assert.Contains("--admin-credential-out", e.Message, StringComparison.Ordinal);
        Assert.Contains("first start", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(data, "admin.credential")), "No credential in the data directory.");

        // Inside the data directory: refused before anything is created.
        string fresh = directory.Sub("fresh");
        e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = fresh, Urls = "http://127.0.0.1:0", AdminCredentialOut = Path.Combine(fresh, "sub", "admin.credential") }));
        Assert.Contains("inside the data directory", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(fresh), "Nothing is created before the options are valid.");

        // An existing file is never overwritten.
        string existing = directory.Sub("existing.credential");
        File.WriteAllText(existing, "keep me");
        e = Assert.Throws<ServerConfigurationException>(() => ServerHost.Build(new ServerOptions { DataDirectory = data, Urls = "http://127.0.0.1:0", AdminCredentialOut = existing }));
        Assert.Contains("never overwritten", e.Message, StringComparison.Ordinal);
        Assert.Equal("keep me", File.ReadAllText(existing));
    }

    [Fact]
    public async Task At_first_start_the_credential_is_written_once_owner_only_outside_the_data_directory_and_only_its_hash_is_stored()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        string credentialFile = directory.Sub("secrets", "admin.credential");
        Directory.CreateDirectory(directory.Sub("secrets"));
        string credential;
        await using (TestServer server = await TestServer.StartAsync(options => options.AdminCredentialOut = credentialFile, dataDirectory: data))
        {
            credential = server.AdminCredential;
            Assert.Equal(credential, File.ReadAllText(credentialFile).Trim());
            Assert.True(credential.Length >= 40);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(credentialFile));
            }

            Assert.False(File.Exists(Path.Combine(data, "admin.credential")), "The data directory holds no admin credential.");
            Assert.DoesNotContain(Directory.EnumerateFiles(data).Where(f => Path.GetFileName(f) != DataDirectory.LockFile), f => File.ReadAllText(f).Contains(credential, StringComparison.Ordinal));
            Assert.Equal(SHA256.HashData(Encoding.UTF8.GetBytes(credential)), server.Database.Scalar<byte[]>("SELECT credential_hash FROM admin_credential"));
            Assert.Equal(1L, server.Database.Count("SELECT epoch FROM admin_credential"));

            string token = await server.AdminTokenAsync();
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", token)).Status);
            Assert.Equal(1, EpochOf(token));
        }

        // A restart writes nothing (the file is there, and would not be overwritten) and keeps the credential.
        DateTime written = File.GetLastWriteTimeUtc(credentialFile);
        await using (TestServer server = await TestServer.StartAsync(options => options.AdminCredentialOut = credentialFile, dataDirectory: data))
        {
            Assert.Equal(credential, server.AdminCredential);
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", await server.AdminTokenAsync())).Status);
        }

        Assert.Equal(written, File.GetLastWriteTimeUtc(credentialFile));
    }

    [Fact]
    [Trait("Store", "sqlite")]
    public async Task An_admin_credential_file_of_an_older_server_is_hashed_into_the_database_and_deleted()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", await server.AdminTokenAsync())).Status);
        }

        // Back to schema version 3: no admin_credential table, the credential in <data>/admin.credential.
        const string Legacy = "legacy-admin-credential-0123456789";
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(data, "modelseal.db")}"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "DROP TABLE admin_credential; PRAGMA user_version = 3;";
            command.ExecuteNonQuery();
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        DataDirectory.WriteSecretFile(Path.Combine(data, "admin.credential"), Encoding.ASCII.GetBytes(Legacy + "\n"), overwrite: false);
        File.WriteAllText(TestKeyServer.CredentialFileFor(data), Legacy);

        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            Assert.False(File.Exists(Path.Combine(data, "admin.credential")), "The old credential file is deleted.");
            Assert.Equal(SHA256.HashData(Encoding.UTF8.GetBytes(Legacy)), server.Database.Scalar<byte[]>("SELECT credential_hash FROM admin_credential"));
            Assert.Equal(8L, server.Database.Count("PRAGMA user_version"));
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", await server.AdminTokenAsync())).Status);
        }
    }

    [Fact]
    public async Task A_rotation_refuses_every_earlier_admin_token_cached_ones_included_and_the_old_credential()
    {
        await using TestServer server = await TestServer.StartAsync();
        string before = await server.AdminTokenAsync();
        string unused = await server.AdminTokenAsync();
        // Validated once: now in the token cache.
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", before)).Status);

        // As another instance sharing the database, or the offline command, would: a new credential and epoch in the database.
        using var directory = new TempDirectory();
        string rotatedFile = directory.Sub("rotated.credential");
        long epoch = AdminCredential.Rotate(server.App.Services.GetRequiredService<Store>(), server.App.Services.GetRequiredService<DataDirectory>(), rotatedFile, server.Now);
        Assert.Equal(2, epoch);
        string rotated = File.ReadAllText(rotatedFile).Trim();
        Secrets.Add("rotated admin credential", rotated);

        (await server.GetAsync("/v1/admin/models", before)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await server.GetAsync("/v1/admin/models", unused)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await server.PostAsync("/v1/token", new { grantType = "admin", credential = server.AdminCredential })).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");

        Api issued = await server.PostAsync("/v1/token", new { grantType = "admin", credential = rotated });
        Assert.Equal(HttpStatusCode.OK, issued.Status);
        string after = issued.Json.GetProperty("accessToken").GetString()!;
        Secrets.Add("rotated admin token", after);
        Assert.Equal(2, EpochOf(after));
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", after)).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", after)).Status);
        Assert.Equal(1L, server.Database.Count("SELECT COUNT(*) FROM audit WHERE event = 'admin.credential-rotated'"));
        Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/audit/verify", after)).Status);
    }

    [Fact]
    [Trait("Store", "sqlite")]
    public async Task The_offline_rotation_needs_the_server_stopped_and_a_new_file_outside_the_data_directory()
    {
        using var directory = new TempDirectory();
        string data = directory.Sub("data");
        string before;
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            before = await server.AdminTokenAsync();
            var busy = Assert.Throws<ServerConfigurationException>(() => AdminCredentialRotation.Rotate(new ServerOptions { DataDirectory = data }, directory.Sub("busy.credential")));
            Assert.Contains("in use", busy.Message, StringComparison.Ordinal);
            Assert.False(File.Exists(directory.Sub("busy.credential")));
        }

        var inside = Assert.Throws<ServerConfigurationException>(() => AdminCredentialRotation.Rotate(new ServerOptions { DataDirectory = data }, Path.Combine(data, "admin.credential")));
        Assert.Contains("inside the data directory", inside.Message, StringComparison.Ordinal);
        var exists = Assert.Throws<ServerConfigurationException>(() => AdminCredentialRotation.Rotate(new ServerOptions { DataDirectory = data }, TestKeyServer.CredentialFileFor(data)));
        Assert.Contains("never overwritten", exists.Message, StringComparison.Ordinal);

        string newFile = directory.Sub("new.credential");
        AdminCredentialRotationResult result = AdminCredentialRotation.Rotate(new ServerOptions { DataDirectory = data }, newFile);
        Assert.Equal(2, result.Epoch);
        Assert.Equal(newFile, result.CredentialFile);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(newFile));
        }

        // The restarted server (the same token key): the token issued before the rotation is refused, the new credential works.
        File.Copy(newFile, TestKeyServer.CredentialFileFor(data), overwrite: true);
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data))
        {
            (await server.GetAsync("/v1/admin/models", before)).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
            Assert.Equal(HttpStatusCode.OK, (await server.GetAsync("/v1/admin/models", await server.AdminTokenAsync())).Status);
        }
    }

    private static long EpochOf(string token)
    {
        using JsonDocument payload = JsonDocument.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(token.Split('.')[1]));
        return payload.RootElement.GetProperty("aep").GetInt64();
    }
}
