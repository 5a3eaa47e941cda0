using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Tests;

/// <summary>
/// Signed audit checkpoints (docs/protocol.md section 4.3): written every Audit:CheckpointEvery records, signed by the
/// answer key of the JWKS, and checked by verify, which then detects a log cut short before the latest checkpoint.
/// </summary>
public sealed class AuditCheckpointTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_checkpoint_is_signed_by_the_answer_key_every_N_records()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await StartAsync(time);
        string admin = await server.AdminTokenAsync();
        AuditTrail audit = server.App.Services.GetRequiredService<AuditTrail>();

        await ModelsAsync(server, admin, 4);
        await AuditCoalescingTests.PassAsync(audit, time, AuditTrail.Tick);
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints"));
        await ModelsAsync(server, admin, 1, from: 4);
        await AuditCoalescingTests.PassAsync(audit, time, AuditTrail.Tick);
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints"));

        JsonElement verified = await AuditChainTests.VerifyAsync(server, admin);
        Assert.True(verified.GetProperty("verified").GetBoolean(), verified.ToString());
        JsonElement checkpoint = verified.GetProperty("checkpoint");
        Assert.True(checkpoint.GetProperty("verified").GetBoolean());
        Assert.Equal(5, checkpoint.GetProperty("records").GetInt64());
        Assert.Equal(5, checkpoint.GetProperty("lastId").GetInt64());
        Assert.Equal(verified.GetProperty("lastHash").GetString(), checkpoint.GetProperty("lastHash").GetString());
        Assert.Equal("2026-11-23T10:00:02Z", checkpoint.GetProperty("at").GetString());

        // An outsider checks the signature from the text of section 4.3 and the JWKS's answer key.
        JsonElement key = (await server.GetAsync("/.well-known/jwks.json")).Json.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("purpose").GetString() == "answer");
        Assert.Equal(key.GetProperty("kid").GetString(), checkpoint.GetProperty("keyId").GetString());
        Assert.True(OutsiderVerifies(checkpoint, key));
        Assert.False(OutsiderVerifies(checkpoint, key, records: 4));

        // Four more records are not enough for the next; the fifth is.
        await ModelsAsync(server, admin, 4, from: 5);
        await AuditCoalescingTests.PassAsync(audit, time, AuditTrail.Tick);
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints"));
        await ModelsAsync(server, admin, 1, from: 9);
        await AuditCoalescingTests.PassAsync(audit, time, AuditTrail.Tick);
        Assert.Equal(10, (await AuditChainTests.VerifyAsync(server, admin)).GetProperty("checkpoint").GetProperty("records").GetInt64());
    }

    [Fact]
    public async Task A_checkpoint_is_written_when_the_interval_has_passed_and_records_were_appended()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await StartAsync(time, o => (o.Audit.CheckpointEvery, o.Audit.CheckpointInterval) = (0, TimeSpan.FromMinutes(1)));
        string admin = await server.AdminTokenAsync();
        AuditTrail audit = server.App.Services.GetRequiredService<AuditTrail>();
        await AuditCoalescingTests.PassAsync(audit, time, TimeSpan.FromMinutes(2));
        Assert.Equal(0, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints"));

        await ModelsAsync(server, admin, 1);
        await AuditCoalescingTests.PassAsync(audit, time, TimeSpan.FromSeconds(1));
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints"));
        await ModelsAsync(server, admin, 1, from: 1);
        await AuditCoalescingTests.PassAsync(audit, time, TimeSpan.FromSeconds(59));
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints"));
        await AuditCoalescingTests.PassAsync(audit, time, TimeSpan.FromSeconds(1));
        Assert.Equal(2, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints"));
    }

    [Fact]
    public async Task A_checkpoint_with_a_forged_signature_fails_verification()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await StartAsync(time);
        string admin = await server.AdminTokenAsync();
        await CheckpointedAsync(server, admin, time);

        TamperCheckpoints(server, "UPDATE audit_checkpoints SET signature = @s", Convert.FromHexString(new string('a', 128)));
        JsonElement result = await AuditChainTests.VerifyAsync(server, admin);
        Assert.False(result.GetProperty("verified").GetBoolean(), result.ToString());
        Assert.False(result.GetProperty("checkpoint").GetProperty("verified").GetBoolean());
        Assert.Contains("signature does not verify", result.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, result.GetProperty("firstBadId").ValueKind);

        // Nor does a checkpoint that moves its head, keeping the signature.
        TamperCheckpoints(server, "UPDATE audit_checkpoints SET records = 4, last_id = 4");
        Assert.False((await AuditChainTests.VerifyAsync(server, admin)).GetProperty("verified").GetBoolean());
    }

    [Fact]
    public async Task Records_removed_from_before_the_latest_checkpoint_fail_verification_with_the_reason()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await StartAsync(time);
        string admin = await server.AdminTokenAsync();
        await CheckpointedAsync(server, admin, time);
        await ModelsAsync(server, admin, 2, from: 5);

        Assert.Equal(4, server.Database.Tamper("DELETE FROM audit WHERE id >= 4;"));
        JsonElement result = await AuditChainTests.VerifyAsync(server, admin);
        Assert.False(result.GetProperty("verified").GetBoolean(), result.ToString());
        Assert.Equal(3, result.GetProperty("records").GetInt64());
        Assert.Equal(
            "the log has 3 records and ends before the latest signed checkpoint (5 records up to record 5, at 2026-11-23T10:00:01Z): records were removed from its end.",
            result.GetProperty("reason").GetString());
        Assert.True(result.GetProperty("checkpoint").GetProperty("records").GetInt64() == 5);
        Assert.False(result.GetProperty("checkpoint").GetProperty("verified").GetBoolean());
    }

    [Fact]
    public async Task Records_removed_only_after_the_latest_checkpoint_verify_alone_but_not_against_a_head()
    {
        var time = new ManualTime(Start);
        await using TestServer server = await StartAsync(time);
        string admin = await server.AdminTokenAsync();
        await CheckpointedAsync(server, admin, time);
        await ModelsAsync(server, admin, 2, from: 5);
        JsonElement head = await AuditChainTests.VerifyAsync(server, admin);
        Assert.Equal(7, head.GetProperty("records").GetInt64());

        Assert.Equal(2, server.Database.Tamper("DELETE FROM audit WHERE id > 5;"));
        JsonElement alone = await AuditChainTests.VerifyAsync(server, admin);
        Assert.True(alone.GetProperty("verified").GetBoolean(), alone.ToString());
        Assert.True(alone.GetProperty("checkpoint").GetProperty("verified").GetBoolean());

        JsonElement against = await AuditChainTests.VerifyAsync(server, admin, head);
        Assert.False(against.GetProperty("verified").GetBoolean(), against.ToString());
        Assert.Contains("the log has 5 records where 7 were expected", against.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Backends", "own")]
    public void A_log_rewritten_before_the_checkpoint_with_its_hashes_recomputed_fails()
    {
        AuditRecord[] records = [.. Chain(Enumerable.Range(1, 5).Select(i => (long)i))];
        var checkpoint = new AuditCheckpoint(1, 5, 5, records[^1].Hash!, Start, "kid", new byte[64]);
        AuditVerification intact = AuditChain.Verify(records, null, null, checkpoint);
        Assert.True(intact.Verified && intact.CheckpointVerified, intact.Reason);

        // Record 2 deleted and every later hash recomputed: a valid chain, but not the checkpointed one.
        AuditVerification rewritten = AuditChain.Verify(Chain([1, 3, 4, 5]), null, null, checkpoint);
        Assert.False(rewritten.Verified);
        Assert.Equal(5, rewritten.FirstBadId);
        Assert.Contains("is not the record the latest signed checkpoint covers", rewritten.Reason, StringComparison.Ordinal);

        // The checkpointed record itself deleted, the rest rechained.
        AuditVerification missing = AuditChain.Verify(Chain([1, 2, 3, 4, 6]), null, null, checkpoint);
        Assert.False(missing.Verified);
        Assert.Contains("record 5, which the latest signed checkpoint covers", missing.Reason, StringComparison.Ordinal);
    }

    private static IEnumerable<AuditRecord> Chain(IEnumerable<long> ids)
    {
        byte[] previous = AuditChain.Genesis;
        foreach (long id in ids)
        {
            var entry = new AuditEntry("model.created", "ok", "admin", ModelId: "m" + id);
            previous = AuditChain.Link(previous, id, Start.ToUnixTimeSeconds() + id, entry);
            yield return new AuditRecord(id, Start.AddSeconds(id), entry, previous);
        }
    }

    [Fact]
    [Trait("MasterKey", "file")]
    public async Task A_new_answer_key_checkpoints_the_head_at_start_so_that_verify_goes_on()
    {
        using var data = new TempDirectory();
        string oldKey;
        string head;
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data.Sub("data")))
        {
            string admin = await server.AdminTokenAsync();
            await ModelsAsync(server, admin, 3);
            head = (await AuditChainTests.VerifyAsync(server, admin)).GetProperty("lastHash").GetString()!;
            oldKey = AnswerKeyId(await server.GetAsync("/.well-known/jwks.json"));
        }

        // The stop signed the head with the old key; a lost key file is replaced at the next start.
        File.Delete(Path.Combine(data.Sub("data"), "answer-signing.key"));
        await using (TestServer server = await TestServer.StartAsync(dataDirectory: data.Sub("data")))
        {
            string newKey = AnswerKeyId(await server.GetAsync("/.well-known/jwks.json"));
            Assert.NotEqual(oldKey, newKey);
            Assert.Equal(2, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints"));
            Assert.Contains(server.Logs.Lines, l => l.Contains($"changed from {oldKey} to {newKey}", StringComparison.Ordinal));

            JsonElement verified = await AuditChainTests.VerifyAsync(server, await server.AdminTokenAsync());
            Assert.True(verified.GetProperty("verified").GetBoolean(), verified.ToString());
            JsonElement checkpoint = verified.GetProperty("checkpoint");
            Assert.Equal(newKey, checkpoint.GetProperty("keyId").GetString());
            Assert.Equal(3, checkpoint.GetProperty("records").GetInt64());
            Assert.Equal(head, checkpoint.GetProperty("lastHash").GetString());
        }
    }

    private static string AnswerKeyId(Api jwks) =>
        jwks.Json.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("purpose").GetString() == "answer").GetProperty("kid").GetString()!;

    private static Task<TestServer> StartAsync(ManualTime time, Action<Configuration.ServerOptions>? configure = null) =>
        TestServer.StartAsync(options =>
        {
            options.Time = time;
            options.Audit.CheckpointEvery = 5;
            options.Audit.CheckpointInterval = TimeSpan.Zero;
            configure?.Invoke(options);
        });

    /// <summary>Five records and the checkpoint of them.</summary>
    private static async Task CheckpointedAsync(TestServer server, string admin, ManualTime time)
    {
        await ModelsAsync(server, admin, 5);
        await AuditCoalescingTests.PassAsync(server.App.Services.GetRequiredService<AuditTrail>(), time, AuditTrail.Tick);
        Assert.Equal(1, server.Database.Count("SELECT COUNT(*) FROM audit_checkpoints WHERE records = 5"));
    }

    private static async Task ModelsAsync(TestServer server, string admin, int count, int from = 0)
    {
        for (int i = from; i < from + count; i++)
        {
            await server.CreateModelAsync(admin, $"m{i}");
        }
    }

    /// <summary>Changes the checkpoints table past its append-only triggers.</summary>
    private static void TamperCheckpoints(TestServer server, string sql, byte[]? signature = null)
    {
        string bypass = server.Database.IsPostgres
            ? "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER; " + sql + "; ALTER TABLE audit_checkpoints ENABLE TRIGGER USER;"
            : "DROP TRIGGER IF EXISTS audit_checkpoints_no_update; " + sql + ";";
        server.Database.Execute(signature is null ? bypass : bypass.Replace("@s", (server.Database.IsPostgres ? "'\\x" : "X'") + Convert.ToHexString(signature) + "'", StringComparison.Ordinal));
    }

    /// <summary>docs/protocol.md section 4.3, implemented again from the text, checked with the JWK.</summary>
    private static bool OutsiderVerifies(JsonElement checkpoint, JsonElement jwk, long? records = null)
    {
        byte[] hash = System.Buffers.Text.Base64Url.DecodeFromChars(checkpoint.GetProperty("lastHash").GetString());
        using var message = new MemoryStream();
        message.Write(Encoding.ASCII.GetBytes("modelseal-audit-checkpoint-v1\0"));
        Span<byte> number = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(number, records ?? checkpoint.GetProperty("records").GetInt64());
        message.Write(number);
        BinaryPrimitives.WriteInt64BigEndian(number, checkpoint.GetProperty("lastId").GetInt64());
        message.Write(number);
        BinaryPrimitives.WriteUInt16BigEndian(number, (ushort)hash.Length);
        message.Write(number[..2]);
        message.Write(hash);
        BinaryPrimitives.WriteInt64BigEndian(number, DateTimeOffset.Parse(checkpoint.GetProperty("at").GetString()!, System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeSeconds());
        message.Write(number);
        using var ecdsa = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = System.Buffers.Text.Base64Url.DecodeFromChars(jwk.GetProperty("x").GetString()), Y = System.Buffers.Text.Base64Url.DecodeFromChars(jwk.GetProperty("y").GetString()) },
        });
        return ecdsa.VerifyData(message.ToArray(), System.Buffers.Text.Base64Url.DecodeFromChars(checkpoint.GetProperty("signature").GetString()), HashAlgorithmName.SHA256);
    }
}
