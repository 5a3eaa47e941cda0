using ModelSeal.Protocol;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Endpoints;
using ModelSeal.Server.Http;
using ModelSeal.Server.Security;

namespace ModelSeal.Server.Tests;

/// <summary>Small pieces checked without a server.</summary>
public sealed class UnitTests
{
    [Theory]
    [InlineData("2026-11-23T10:00:00Z", 1795428000L)]
    [InlineData("2026-11-23T10:00:00.987Z", 1795428000L)]
    [InlineData("2026-11-23T10:00:00+00:00", 1795428000L)]
    [InlineData("2026-11-23T11:30:00+01:30", 1795428000L)]
    [InlineData("2026-11-23T10:00:00.1234567+00:00", 1795428000L)]
    [InlineData("2026-11-23t10:00:00z", 1795428000L)]
    public void Rfc3339_times_with_an_offset_parse_to_whole_seconds(string text, long seconds)
    {
        Assert.True(Rfc3339.TryParse(text, out DateTimeOffset time));
        Assert.Equal(seconds, time.ToUnixTimeSeconds());
        Assert.Equal(TimeSpan.Zero, time.Offset);
    }

    [Theory]
    [InlineData("2026-11-23T10:00:00")]
    [InlineData("2026-11-23")]
    [InlineData("23/11/2026 10:00:00Z")]
    [InlineData("2026-13-23T10:00:00Z")]
    [InlineData("")]
    [InlineData(null)]
    public void Times_without_an_offset_or_malformed_are_refused(string? text)
    {
        Assert.False(Rfc3339.TryParse(text, out _));
    }

    [Fact]
    public void Rfc3339_format_is_utc_whole_seconds()
    {
        Assert.Equal("2026-11-23T10:00:00Z", Rfc3339.Format(new DateTimeOffset(2026, 11, 23, 11, 30, 0, 500, TimeSpan.FromMinutes(90))));
    }

    [Fact]
    public void Next_version_follows_the_largest_integer_version()
    {
        Assert.Equal("1", ModelCatalogue.NextVersion([]));
        Assert.Equal("1", ModelCatalogue.NextVersion(["beta", "2026.1"]));
        Assert.Equal("11", ModelCatalogue.NextVersion(["2", "10", "9", "x"]));
        Assert.Equal("1", ModelCatalogue.NextVersion([new string('9', 40)]));
    }

    [Fact]
    public void Key_ids_are_model_version_and_8_hex_digits_within_128_characters()
    {
        Assert.Matches("^m\\.1\\.[0-9a-f]{8}$", ModelCatalogue.NewKeyId("m", "1"));
        string longest = ModelCatalogue.NewKeyId(new string('a', 128), new string('1', 64));
        Assert.Equal(128, longest.Length);
        Assert.True(Identifier.IsValid(longest, Identifier.MaxIdLength));
        Assert.NotEqual(ModelCatalogue.NewKeyId("m", "1"), ModelCatalogue.NewKeyId("m", "1"));
    }

    [Fact]
    public void Token_lifetime_is_checked_against_the_given_clock_with_30_seconds_of_skew()
    {
        var now = new DateTimeOffset(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);
        var time = new ManualTime(now);
        DateTime t = now.UtcDateTime;
        Assert.True(Authentication.IsWithinLifetime(time, t, t.AddMinutes(15)));
        Assert.False(Authentication.IsWithinLifetime(time, t, null));
        Assert.True(Authentication.IsWithinLifetime(time, t.AddSeconds(30), t.AddMinutes(15)));
        Assert.False(Authentication.IsWithinLifetime(time, t.AddSeconds(31), t.AddMinutes(15)));
        Assert.True(Authentication.IsWithinLifetime(time, null, t.AddSeconds(-30)));
        Assert.False(Authentication.IsWithinLifetime(time, null, t.AddSeconds(-31)));
        Assert.False(Authentication.IsWithinLifetime(time, t.AddMinutes(20), t.AddMinutes(15)));
    }
}
