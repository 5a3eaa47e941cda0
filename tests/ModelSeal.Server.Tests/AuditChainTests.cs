using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using ModelSeal.Hpke;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The audit log's hash chain (docs/protocol.md section 4.1): intact logs verify, survive restarts and migrations, and
/// every change made directly in the database file is found by <c>GET /v1/admin/audit/verify</c>.
/// </summary>
public sealed class AuditChainTests
{
    private const int Records = 6;

    [Fact]
    public async Task An_intact_log_verifies_and_its_hashes_follow_the_documented_encoding()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.GetAsync("/v1/admin/audit/verify")).Status);

        JsonElement empty = (await server.GetAsync("/v1/admin/audit/verify", admin)).Json;
        Assert.True(empty.GetProperty("verified").GetBoolean());
        Assert.Equal(0, empty.GetProperty("records").GetInt64());
        Assert.Equal(TestServer.Base64Url(new byte[32]), empty.GetProperty("lastHash").GetString());

        await FillAsync(server, admin);
        JsonElement result = await VerifyAsync(server, admin);
        Assert.True(result.GetProperty("verified").GetBoolean(), result.ToString());
        Assert.Equal(Records, result.GetProperty("records").GetInt64());
        Assert.Equal(Records, result.GetProperty("lastId").GetInt64());
        Assert.Equal(JsonValueKind.Null, result.GetProperty("firstBadId").ValueKind);
        Assert.Equal(JsonValueKind.Null, result.GetProperty("reason").ValueKind);

        // An outsider's verifier, written from the documentation alone, agrees with every hash.
        JsonElement items = (await server.GetAsync("/v1/admin/audit?limit=500", admin)).Json.GetProperty("items");
        byte[] previous = new byte[32];
        foreach (JsonElement item in items.EnumerateArray())
        {
            previous = OutsiderLink(previous, item);
            Assert.Equal(TestServer.Base64Url(previous), item.GetProperty("hash").GetString());
        }

        Assert.Equal(TestServer.Base64Url(previous), result.GetProperty("lastHash").GetString());

        // The head of an earlier verification is still there.
        JsonElement again = await VerifyAsync(server, admin, result);
        Assert.True(again.GetProperty("verified").GetBoolean(), again.ToString());
        (await server.GetAsync("/v1/admin/audit/verify?expectRecords=3", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await server.GetAsync("/v1/admin/audit/verify?expectRecords=3&expectHash=AAAA", admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await server.GetAsync("/v1/admin/audit/verify?expectRecords=-1&expectHash=" + TestServer.Base64Url(new byte[32]), admin)).AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
    }

    [Fact]
    public void The_format_1_encoding_matches_the_documented_example()
    {
        long at = new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds();
        var first = new AuditEntry("model.created", "ok", "admin", ModelId: "m", Client: "127.0.0.1");
        var second = new AuditEntry("licence.created", "ok", "admin", LicenceId: "");
        Assert.Equal(
            "0000000000000001000000006b040ea0010000000d6d6f64656c2e63726561746564010000000561646d696e0001000000016d00000001000000093132372e302e302e3101000000026f6b",
            Convert.ToHexStringLower(AuditChain.Encode(1, at, first, AuditChain.LegacyFormat)));
        byte[] hash1 = AuditChain.Link(new byte[32], 1, at, first, AuditChain.LegacyFormat);
        Assert.Equal("9726f68679e0698b2f4386efa926559385ff3eb19a10bb9ac30bc3427bba610e", Convert.ToHexStringLower(hash1));
        Assert.Equal(
            "0000000000000002000000006b040ea1010000000f6c6963656e63652e63726561746564010000000561646d696e0100000000000000000001000000026f6b",
            Convert.ToHexStringLower(AuditChain.Encode(2, at + 1, second, AuditChain.LegacyFormat)));
        Assert.Equal("f40c72c6d5b2ab79bfb1aaa8e1c7cbae56021224f68b0022362b9169e825b775", Convert.ToHexStringLower(AuditChain.Link(hash1, 2, at + 1, second, AuditChain.LegacyFormat)));

        // A null and an empty string encode differently; format 1 has no place for an issuer or attributes.
        Assert.NotEqual(AuditChain.Encode(2, at, second, AuditChain.LegacyFormat), AuditChain.Encode(2, at, second with { LicenceId = null }, AuditChain.LegacyFormat));
        Assert.Throws<InvalidOperationException>(() => AuditChain.Encode(1, at, first with { Issuer = "x" }, AuditChain.LegacyFormat));
    }

    [Fact]
    public void The_format_2_encoding_matches_the_documented_example()
    {
        // The expected values were computed from protocol.md 4.1 by an independent script (Python's struct and hashlib).
        long at = new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds();
        var first = new AuditEntry("model.created", "ok", "admin", ModelId: "m", Client: "127.0.0.1", Issuer: "modelseal:server");
        var second = new AuditEntry("licence.created", "ok", "admin", LicenceId: "", Attributes: new Dictionary<string, string> { ["rule"] = "gold" });
        Assert.Equal(
            "ff020000000000000001000000006b040ea00000000600000006636c69656e74000000093132372e302e302e31000000056576656e740000000d6d6f64656c2e6372656174656400000006697373756572000000106d6f64656c7365616c3a736572766572000000076d6f64656c4964000000016d000000076f7574636f6d65000000026f6b000000077375626a6563740000000561646d696e",
            Convert.ToHexStringLower(AuditChain.Encode(1, at, first)));
        byte[] hash1 = AuditChain.Link(new byte[32], 1, at, first);
        Assert.Equal("66c4b302ea0eae98fd417238a2083ec3cd2cefedc6b71b9665da368301f602cc", Convert.ToHexStringLower(hash1));
        Assert.Equal(
            "ff020000000000000002000000006b040ea100000005000000056576656e740000000f6c6963656e63652e63726561746564000000096c6963656e6365496400000000000000076f7574636f6d65000000026f6b0000000472756c6500000004676f6c64000000077375626a6563740000000561646d696e",
            Convert.ToHexStringLower(AuditChain.Encode(2, at + 1, second)));
        Assert.Equal("644f1ce471716dbe1ba2413cdbf19d28376742d76380324b383e5dd26f495710", Convert.ToHexStringLower(AuditChain.Link(hash1, 2, at + 1, second)));

        // Absent and empty differ; an attribute may not reuse a fixed field's name or be anything but a plain ASCII name.
        Assert.NotEqual(AuditChain.Encode(2, at, second), AuditChain.Encode(2, at, second with { LicenceId = null }));
        Assert.Throws<ArgumentException>(() => AuditChain.Encode(2, at, second with { Attributes = new Dictionary<string, string> { ["subject"] = "x" } }));
        Assert.Throws<ArgumentException>(() => AuditChain.Encode(2, at, second with { Attributes = new Dictionary<string, string> { ["r\u00e8gle"] = "x" } }));

        // A format this server does not know is a record that does not verify, not a crash.
        AuditVerification unknown = AuditChain.Verify([new AuditRecord(1, DateTimeOffset.FromUnixTimeSeconds(at), first, new byte[32], 3)], null, null);
        Assert.False(unknown.Verified);
        Assert.Contains("format 3", unknown.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("delete-middle", 4L, 2L)]
    [InlineData("alter-field", 3L, 2L)]
    [InlineData("null-to-empty", 3L, 2L)]
    [InlineData("swap", 2L, 1L)]
    public async Task Changes_to_the_database_are_found(string tamper, long firstBadId, long goodRecords)
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await FillAsync(server, admin);
        Assert.True((await VerifyAsync(server, admin)).GetProperty("verified").GetBoolean());

        string sql = tamper switch
        {
            "delete-middle" => "DELETE FROM audit WHERE id = 3;",
            "alter-field" => "UPDATE audit SET outcome = 'forged' WHERE id = 3;",
            "null-to-empty" => "UPDATE audit SET model_id = '' WHERE id = 3 AND model_id IS NULL;",
            _ => """
                CREATE TEMP TABLE swap AS SELECT * FROM audit WHERE id IN (2, 3);
                UPDATE audit SET (at, event, subject, licence_id, model_id, version, key_id, device, client, outcome, hash) =
                    (SELECT at, event, subject, licence_id, model_id, version, key_id, device, client, outcome, hash FROM swap WHERE swap.id = 5 - audit.id)
                    WHERE id IN (2, 3);
                """,
        };
        int changed = Tamper(server, sql);
        Assert.True(tamper == "swap" ? changed >= 2 : changed == 1, $"{changed} rows changed");

        JsonElement result = await VerifyAsync(server, admin);
        Assert.False(result.GetProperty("verified").GetBoolean(), result.ToString());
        Assert.Equal(firstBadId, result.GetProperty("firstBadId").GetInt64());
        Assert.Equal(goodRecords, result.GetProperty("records").GetInt64());
        Assert.Contains($"record {firstBadId} does not chain", result.GetProperty("reason").GetString(), StringComparison.Ordinal);
        if (tamper == "delete-middle")
        {
            Assert.Contains("ids jump from 2 to 4", result.GetProperty("reason").GetString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Truncating_the_tail_is_found_against_an_earlier_head()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await FillAsync(server, admin);
        JsonElement head = await VerifyAsync(server, admin);

        Assert.Equal(1, Tamper(server, "DELETE FROM audit WHERE id = (SELECT MAX(id) FROM audit);"));

        // Alone, a shorter chain is a valid chain: that is why the head must be kept elsewhere.
        JsonElement alone = await VerifyAsync(server, admin);
        Assert.True(alone.GetProperty("verified").GetBoolean());
        Assert.Equal(Records - 1, alone.GetProperty("records").GetInt64());

        JsonElement truncated = await VerifyAsync(server, admin, head);
        Assert.False(truncated.GetProperty("verified").GetBoolean());
        Assert.Equal(JsonValueKind.Null, truncated.GetProperty("firstBadId").ValueKind);
        Assert.Contains("removed from its end", truncated.GetProperty("reason").GetString(), StringComparison.Ordinal);

        // Writing a new record in place of the removed one does not hide it.
        await server.CreateModelAsync(admin, "replacement");
        JsonElement rewritten = await VerifyAsync(server, admin, head);
        Assert.False(rewritten.GetProperty("verified").GetBoolean());
        Assert.Equal(Records, rewritten.GetProperty("firstBadId").GetInt64());
        Assert.Contains("expected head hash", rewritten.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_chain_survives_a_restart()
    {
        using var data = new TempDirectory();
        JsonElement before;
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data.Sub("data")))
        {
            string admin = await server.AdminTokenAsync();
            await FillAsync(server, admin);
            before = await VerifyAsync(server, admin);
        }

        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data.Sub("data")))
        {
            string admin = await server.AdminTokenAsync();
            JsonElement restarted = await VerifyAsync(server, admin);
            Assert.Equal(JsonValueKind.Null, before.GetProperty("checkpoint").ValueKind);
            Assert.Equal(WithoutCheckpoint(before), WithoutCheckpoint(restarted));

            // The first server's stop signed a checkpoint of the whole log; it is still there and verifies.
            JsonElement checkpoint = restarted.GetProperty("checkpoint");
            Assert.True(checkpoint.GetProperty("verified").GetBoolean(), restarted.ToString());
            Assert.Equal(Records, checkpoint.GetProperty("records").GetInt64());
            Assert.Equal(before.GetProperty("lastHash").GetString(), checkpoint.GetProperty("lastHash").GetString());
            await server.CreateModelAsync(admin, "after-restart");
            JsonElement after = await VerifyAsync(server, admin, before);
            Assert.True(after.GetProperty("verified").GetBoolean(), after.ToString());
            Assert.Equal(Records + 1, after.GetProperty("records").GetInt64());
        }
    }

    [Fact]
    [Trait("Store", "sqlite")]
    public async Task A_schema_1_database_is_migrated_and_its_records_chained()
    {
        using var data = new TempDirectory();
        JsonElement before;
        string listing;
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data.Sub("data")))
        {
            string admin = await server.AdminTokenAsync();
            await FillAsync(server, admin);
            before = await VerifyAsync(server, admin);
            listing = (await server.GetAsync("/v1/admin/audit?limit=500", admin)).Text;
        }

        // Back to the first schema: no hash column, no schema-3 columns, user_version 1. The records lose their issuer
        // and become what a schema-1 server wrote.
        string connection = Connection(data.Sub("data"));
        Execute(connection, """
            DROP TRIGGER audit_no_update;
            DROP INDEX licences_by_issuer_subject;
            ALTER TABLE audit DROP COLUMN hash;
            ALTER TABLE audit DROP COLUMN format;
            ALTER TABLE audit DROP COLUMN issuer;
            ALTER TABLE audit DROP COLUMN attributes;
            ALTER TABLE licences DROP COLUMN claim;
            ALTER TABLE licences DROP COLUMN issuer;
            CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
            DROP TABLE audit_checkpoints;
            PRAGMA user_version = 1;
            """);

        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data.Sub("data")))
        {
            string admin = await server.AdminTokenAsync();
            JsonElement migrated = await VerifyAsync(server, admin);
            Assert.True(migrated.GetProperty("verified").GetBoolean(), migrated.ToString());
            Assert.Equal(before.GetProperty("records").GetInt64(), migrated.GetProperty("records").GetInt64());
            Assert.Equal(8L, Scalar(connection, "PRAGMA user_version"));
            Assert.Throws<SqliteException>(() => Execute(connection, "UPDATE audit SET outcome = 'forged'"));

            // Every old record is format 1 and chained as such (an outsider agrees); every licence is claimed by its credential.
            JsonElement items = (await server.GetAsync("/v1/admin/audit?limit=500", admin)).Json.GetProperty("items");
            Assert.Equal(JsonDocument.Parse(listing).RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("event").GetString()), items.EnumerateArray().Select(i => i.GetProperty("event").GetString()));
            Assert.All(items.EnumerateArray(), i => Assert.Equal(1, i.GetProperty("format").GetInt32()));
            Assert.Equal(Records, server.Database.Count("SELECT COUNT(*) FROM audit WHERE format = 1 AND issuer IS NULL"));
            Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM licences WHERE claim <> 'credential'"));

            // New records are format 2 and continue the chain.
            await server.CreateModelAsync(admin, "after-migration");
            JsonElement after = await VerifyAsync(server, admin, migrated);
            Assert.True(after.GetProperty("verified").GetBoolean(), after.ToString());
            JsonElement last = (await server.GetAsync($"/v1/admin/audit?after={Records}", admin)).Json.GetProperty("items")[0];
            Assert.Equal(2, last.GetProperty("format").GetInt32());
            Assert.Equal("modelseal:server", last.GetProperty("issuer").GetString());
            byte[] previous = new byte[32];
            foreach (JsonElement item in (await server.GetAsync("/v1/admin/audit?limit=500", admin)).Json.GetProperty("items").EnumerateArray())
            {
                previous = OutsiderLink(previous, item);
                Assert.Equal(TestServer.Base64Url(previous), item.GetProperty("hash").GetString());
            }
        }
    }

    /// <summary>A verification answer without its checkpoint (which a restart adds).</summary>
    private static string WithoutCheckpoint(JsonElement verification) =>
        string.Join(",", verification.EnumerateObject().Where(p => p.Name != "checkpoint").Select(p => p.ToString()));

    /// <summary>Six records: a licence, models, a version and a release (with a device and a null licence id in between).</summary>
    private static async Task FillAsync(TestServer server, string admin)
    {
        await server.CreateModelAsync(admin, "m");
        (Release _, ModelKey key) = await server.CreateVersionAsync(admin, "m");
        key.Dispose();
        Licence licence = await server.CreateLicenceAsync(admin, "chain", ["m"]);
        await server.CreateModelAsync(admin, "n");
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        string token = await server.LicenceTokenAsync(licence);
        (await server.ReleaseAndOpenAsync(token, licence, "m", "latest", device)).Key.Dispose();
        await server.CreateModelAsync(admin, "o");
        Assert.Equal(Records, server.Database.Count("SELECT COUNT(*) FROM audit"));
    }

    internal static async Task<JsonElement> VerifyAsync(ServerClient server, string admin, JsonElement? head = null)
    {
        string query = head is { } h ? $"?expectRecords={h.GetProperty("records").GetInt64()}&expectHash={h.GetProperty("lastHash").GetString()}" : string.Empty;
        Api answer = await server.GetAsync("/v1/admin/audit/verify" + query, admin);
        Assert.True(answer.Status == HttpStatusCode.OK, answer.Text);
        return answer.Json;
    }

    /// <summary>Changes the database behind the server's back, as someone with access to it could.</summary>
    private static int Tamper(TestServer server, string sql) => server.Database.Tamper(sql);

    /// <summary>docs/protocol.md 4.1, implemented again from the text: format 1 (fixed fields) and format 2 (named attributes).</summary>
    private static byte[] OutsiderLink(byte[] previous, JsonElement item)
    {
        using var bytes = new MemoryStream();
        bytes.Write(previous);
        int format = item.GetProperty("format").GetInt32();
        if (format == 2)
        {
            bytes.Write([0xFF, 0x02]);
        }

        Span<byte> number = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(number, item.GetProperty("id").GetInt64());
        bytes.Write(number);
        BinaryPrimitives.WriteInt64BigEndian(number, DateTimeOffset.Parse(item.GetProperty("at").GetString()!, System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeSeconds());
        bytes.Write(number);
        string? Field(string name) => item.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        if (format == 1)
        {
            foreach (string name in new[] { "event", "subject", "licenceId", "modelId", "version", "keyId", "device", "client", "outcome" })
            {
                if (Field(name) is { } value)
                {
                    bytes.WriteByte(1);
                    WriteString(bytes, value);
                }
                else
                {
                    bytes.WriteByte(0);
                }
            }

            return SHA256.HashData(bytes.ToArray());
        }

        var attributes = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string name in new[] { "event", "outcome", "subject", "issuer", "licenceId", "modelId", "version", "keyId", "device", "client" })
        {
            if (Field(name) is { } value)
            {
                attributes[name] = value;
            }
        }

        if (item.TryGetProperty("attributes", out JsonElement extra) && extra.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty property in extra.EnumerateObject())
            {
                attributes[property.Name] = property.Value.GetString()!;
            }
        }

        Span<byte> count = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(count, (uint)attributes.Count);
        bytes.Write(count);
        foreach ((string name, string value) in attributes)
        {
            WriteString(bytes, name);
            WriteString(bytes, value);
        }

        return SHA256.HashData(bytes.ToArray());
    }

    private static void WriteString(MemoryStream bytes, string value)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(value);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)utf8.Length);
        bytes.Write(length);
        bytes.Write(utf8);
    }

    private static string Connection(string dataDirectory) => $"Data Source={Path.Combine(dataDirectory, "modelseal.db")};Pooling=False";

    private static long Scalar(string connectionString, string sql)
    {
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)command.ExecuteScalar()!;
    }

    private static int Execute(string connectionString, string sql)
    {
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteNonQuery();
    }
}
