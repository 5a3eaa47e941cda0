using Microsoft.Extensions.Logging.Abstractions;
using ModelSeal.Hpke;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Files;
using ModelSeal.Server.MasterKeys;
using ModelSeal.Server.Security;
using ModelSeal.Server.Storage;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The key-release decision without a web server: the rules of docs/protocol.md section 2 in their order (pure
/// functions), and <see cref="KeyReleases"/> over a real store — every refusal, its audit record, and the re-checks
/// inside the write transaction that honour a change committed between the checks and the release.
/// </summary>
public sealed class ReleaseDecisionTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static LicenceRecord Licence(string[]? models = null, DateTimeOffset? notBefore = null, DateTimeOffset? expiresAt = null, DateTimeOffset? revokedAt = null, int maxDevices = 2) =>
        new("lic_1", "alice", models ?? ["m"], notBefore, expiresAt, maxDevices, Now.AddDays(-10), revokedAt, new byte[32]);

    private static VersionRecord Version(VersionState state = VersionState.Active) => new(1, "m", "3", "m.3.abcd", state, Now.AddDays(-5));

    /// <summary>Every refusal before the transaction, and which one wins when several apply: the protocol's order.</summary>
    [Theory]
    [InlineData("no-licence", "licence-revoked")]
    [InlineData("revoked,expired,not-covered,no-model", "licence-revoked")]
    [InlineData("not-yet-valid,not-covered", "licence-not-yet-valid")]
    [InlineData("expired,not-covered,no-model", "licence-expired")]
    [InlineData("not-covered,no-model", "model-not-licensed")]
    [InlineData("no-model,bad-key", "model-not-found")]
    [InlineData("no-version,bad-key", "version-not-found")]
    [InlineData("disabled,bad-key", "version-disabled")]
    [InlineData("destroyed,bad-key", "version-destroyed")]
    [InlineData("bad-key", "invalid-device-key")]
    [InlineData("", null)]
    public void Checks_refuse_in_the_protocol_order(string conditions, string? expected)
    {
        HashSet<string> c = [.. conditions.Split(',', StringSplitOptions.RemoveEmptyEntries)];
        LicenceRecord? licence = c.Contains("no-licence") ? null : Licence(
            models: c.Contains("not-covered") ? ["other"] : null,
            notBefore: c.Contains("not-yet-valid") ? Now.AddSeconds(1) : Now.AddDays(-1),
            expiresAt: c.Contains("expired") ? Now : Now.AddDays(1),
            revokedAt: c.Contains("revoked") ? Now.AddHours(-1) : null);
        VersionRecord? version = c.Contains("no-version") ? null : Version(c.Contains("disabled") ? VersionState.Disabled : c.Contains("destroyed") ? VersionState.Destroyed : VersionState.Active);

        Refused? refused = ReleaseRules.CheckLicence(licence, Now, "m")
            ?? ReleaseRules.CheckVersion("m", !c.Contains("no-model"), "3", version)
            ?? ReleaseRules.CheckDeviceKey(!c.Contains("bad-key"));
        Assert.Equal(expected, refused?.Reason.Code());
    }

    [Fact]
    public void Latest_without_an_active_version_and_the_lease_cap()
    {
        Assert.Equal("Model 'm' has no active version.", ReleaseRules.CheckVersion("m", true, ReleaseRules.Latest, null)!.Detail);
        Assert.Equal(Now.AddDays(7), ReleaseRules.LeaseExpiry(Now, TimeSpan.FromDays(7), Licence()));
        Assert.Equal(Now.AddHours(5), ReleaseRules.LeaseExpiry(Now, TimeSpan.FromDays(7), Licence(expiresAt: Now.AddHours(5).AddMilliseconds(900))));
    }

    /// <summary>The re-checks inside the transaction, in their order.</summary>
    [Theory]
    [InlineData(false, "destroyed", false, 9L, "licence-revoked")]
    [InlineData(true, "disabled", false, 9L, "version-disabled")]
    [InlineData(true, "destroyed", true, 0L, "version-destroyed")]
    [InlineData(true, "active", false, 2L, "device-limit")]
    [InlineData(true, "active", true, 2L, null)]
    [InlineData(true, "active", false, 1L, null)]
    public void Rechecks_refuse_in_order(bool licenceActive, string state, bool registered, long devices, string? expected) =>
        Assert.Equal(expected, ReleaseRules.Recheck(Licence(maxDevices: 2), licenceActive, "3", VersionStates.Parse(state), registered, devices)?.Reason.Code());

    [Fact]
    public void Licences_are_matched_only_on_how_they_may_be_claimed()
    {
        var own = new Caller("modelseal:server", "alice", OwnIssuer: true, LicenceId: "lic_1", Client: null);
        LicenceRecord credential = Licence();
        LicenceRecord byIssuer = Licence() with { LicenceId = "lic_2", Claim = LicenceClaim.IssuerSubject, Issuer = "https://idp" };
        List<LicenceRecord> licences = [credential, byIssuer];
        LicenceRecord? Match(Caller caller) => ReleaseRules.MatchLicence(
            caller,
            id => licences.Find(l => l.LicenceId == id),
            (issuer, subject) => licences.FindLast(l => l.Claim == LicenceClaim.IssuerSubject && l.Issuer == issuer && l.Subject == subject));

        Assert.Equal("lic_1", Match(own)?.LicenceId);
        Assert.Null(Match(own with { Subject = "mallory" }));
        Assert.Null(Match(own with { LicenceId = "lic_2", Subject = "alice" }));
        var external = new Caller("https://idp", "alice", OwnIssuer: false, LicenceId: null, Client: null);
        Assert.Equal("lic_2", Match(external)?.LicenceId);
        Assert.Null(Match(external with { Issuer = "https://other" }));
    }

    [Fact]
    [Trait("Backends", "own")]
    public async Task Every_refusal_is_audited_with_its_code_and_issuer()
    {
        await using var domain = await Domain.CreateAsync();
        Caller alice = await domain.LicenceAsync(["m"], maxDevices: 1);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair other = HpkeKeyPair.Generate();

        Assert.Equal("model-not-licensed", (await domain.ReleaseAsync(alice, "n", "latest", device)).Refused?.Reason.Code());
        Assert.Equal("version-not-found", (await domain.ReleaseAsync(alice, "m", "9", device)).Refused?.Reason.Code());
        Assert.Equal("invalid-device-key", (await domain.Releases.ReleaseAsync(alice, new ReleaseQuery("m", "latest", [4, 1, 2]), CancellationToken.None)).Refused?.Reason.Code());
        Outcome<ReleasedKey> released = await domain.ReleaseAsync(alice, "m", "latest", device);
        Assert.True(released.Succeeded);
        using (ModelKey key = KeyRelease.Open(device, released.Value.Enc, released.Value.SealedKey, "m", released.Value.Version, released.Value.KeyId, "alice", released.Value.LeaseExpiresAt))
        {
            Assert.Equal(released.Value.KeyId, key.KeyId);
        }

        Assert.Equal("device-limit", (await domain.ReleaseAsync(alice, "m", "latest", other)).Refused?.Reason.Code());
        Assert.Equal("licence-revoked", (await domain.ReleaseAsync(alice with { LicenceId = "lic_nonexistent" }, "m", "latest", device)).Refused?.Reason.Code());

        List<AuditRecord> records = domain.Audit.List(0, 100).Where(r => r.Entry.Event is AuditEvents.KeyReleased or AuditEvents.KeyRefused).ToList();
        Assert.Equal(["model-not-licensed", "version-not-found", "invalid-device-key", "ok", "device-limit", "licence-revoked"], records.Select(r => r.Entry.Outcome));
        Assert.All(records, r => Assert.Equal("modelseal:server", r.Entry.Issuer));
        Assert.All(records, r => Assert.Equal(AuditChain.CurrentFormat, r.Format));
        Assert.True(domain.Audit.Verify(null, null).Verified);
    }

    [Theory]
    [Trait("Backends", "own")]
    [InlineData("revoke", "licence-revoked")]
    [InlineData("disable", "version-disabled")]
    [InlineData("destroy", "version-destroyed")]
    [InlineData("other-device", "device-limit")]
    public async Task A_change_committed_after_the_checks_is_honoured_inside_the_transaction(string change, string expected)
    {
        await using var domain = await Domain.CreateAsync();
        Caller alice = await domain.LicenceAsync(["m"], maxDevices: 1);
        using HpkeKeyPair device = HpkeKeyPair.Generate();
        using HpkeKeyPair first = HpkeKeyPair.Generate();
        Caller admin = Domain.Admin;

        // Hold the writer; queue the change, then the release, whose checks before its transaction still pass.
        Task<Outcome<ReleasedKey>> release;
        Task changed;
        await using (HeldWriter held = HeldWriter.Hold(domain.Store))
        {
            changed = change switch
            {
                "revoke" => domain.Licences.RevokeAsync(admin, alice.LicenceId!, CancellationToken.None),
                "disable" => domain.Catalogue.ChangeStateAsync(admin, "m", "1", VersionState.Disabled, CancellationToken.None),
                "destroy" => domain.Catalogue.ChangeStateAsync(admin, "m", "1", VersionState.Destroyed, CancellationToken.None),
                _ => domain.ReleaseAsync(alice, "m", "latest", first),
            };
            Assert.True(SpinWait.SpinUntil(() => domain.Store.QueuedWrites == 1, TimeSpan.FromSeconds(30)));
            release = domain.ReleaseAsync(alice, "m", "latest", device);
            Assert.True(SpinWait.SpinUntil(() => domain.Store.QueuedWrites == 2 || release.IsCompleted, TimeSpan.FromSeconds(30)));
            Assert.False(release.IsCompleted);
            await held.ReleaseAsync();
        }

        await changed;
        Assert.Equal(expected, (await release).Refused?.Reason.Code());
        Assert.Equal(change == "other-device" ? 1 : 0, domain.Audit.List(0, 100).Count(r => r.Entry.Event == AuditEvents.KeyReleased));
        Assert.Equal(1, domain.Audit.List(0, 100).Count(r => r.Entry.Outcome == expected));
    }

    [Fact]
    [Trait("Backends", "own")]
    public async Task Refusals_and_problem_codes_are_one_table()
    {
        foreach (Refusal reason in Enum.GetValues<Refusal>())
        {
            Assert.True(Http.Problems.IsKnown(reason.Code()), $"{reason} ({reason.Code()}) has no entry in the problem table.");
        }

        Assert.Equal("licence-not-yet-valid", Refusal.LicenceNotYetValid.Code());
        await Task.CompletedTask;
    }

    /// <summary>The domain services over a real store (SQLite, or PostgreSQL in the second CI pass) and master keys, no web server.</summary>
    private sealed class Domain : IAsyncDisposable
    {
        public static readonly Caller Admin = new("modelseal:server", "admin", OwnIssuer: true, LicenceId: null, Client: "test");

        private readonly TempDirectory _directory;
        private readonly MasterKeyRing _masterKeys;
        private readonly SigningKeys _signingKeys;

        private Domain(TempDirectory directory, Store store, MasterKeyRing masterKeys)
        {
            _directory = directory;
            Store = store;
            _masterKeys = masterKeys;
            var clock = new Clock(TimeProvider.System);

            // One record per refusal, written at once, as these tests count them.
            var options = new ServerOptions { DataDirectory = directory.Path, Audit = { RefusalWindow = TimeSpan.Zero } };
            _signingKeys = new SigningKeys(FileSigningKey.LoadOrCreate(directory.Sub("token.key"), "token key"), FileSigningKey.LoadOrCreate(directory.Sub("answer.key"), "answer key"));
            Audit = new AuditTrail(store, clock, options, _signingKeys, NullLogger<AuditTrail>.Instance);
            Catalogue = new ModelCatalogue(store, masterKeys, clock, NullLogger<ModelCatalogue>.Instance);
            Licences = new Licences(store, clock, NullLogger<Licences>.Instance);
            Releases = new KeyReleases(store, masterKeys, clock, options, new DeviceKeyCache(16), Audit, new EntitlementRuleSet(options, NullLogger<EntitlementRuleSet>.Instance), Server.Attestation.AttestationTrust.Load(options.Attestation), NullLogger<KeyReleases>.Instance);
        }

        public Store Store { get; }

        public AuditTrail Audit { get; }

        public ModelCatalogue Catalogue { get; }

        public Licences Licences { get; }

        public KeyReleases Releases { get; }

        public static async Task<Domain> CreateAsync()
        {
            var directory = new TempDirectory();
            var options = new ServerOptions { DataDirectory = directory.Sub("data") };
            TestBackends.Apply(options);
            DataDirectory data = DataDirectory.Open(options.DataDirectory);
            Store store = ServerHost.OpenStore(options.Database, data, telemetry: null, prepare: true);
            var domain = new Domain(directory, store, MasterKeyProviders.Open(options.MasterKey, data.MasterKeysPath, mayCreate: true));
            Assert.True((await domain.Catalogue.CreateModelAsync(Admin, "m", CancellationToken.None)).Succeeded);
            using HpkeKeyPair publisher = HpkeKeyPair.Generate();
            Assert.True((await domain.Catalogue.CreateVersionAsync(Admin, "m", null, publisher.PublicKey.Encoded.ToArray(), CancellationToken.None)).Succeeded);
            return domain;
        }

        public async Task<Caller> LicenceAsync(string[] models, int maxDevices)
        {
            CreatedLicence created = await Licences.CreateAsync(Admin, new NewLicence("alice", models, null, null, maxDevices, null), CancellationToken.None);
            return new Caller("modelseal:server", "alice", OwnIssuer: true, created.Licence.LicenceId, Client: "127.0.0.1");
        }

        public Task<Outcome<ReleasedKey>> ReleaseAsync(Caller caller, string modelId, string version, HpkeKeyPair device) =>
            Releases.ReleaseAsync(caller, new ReleaseQuery(modelId, version, device.PublicKey.Encoded.ToArray()), CancellationToken.None);

        public ValueTask DisposeAsync()
        {
            Store.Dispose();
            _masterKeys.Dispose();
            Audit.Dispose();
            _signingKeys.Dispose();
            _directory.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
