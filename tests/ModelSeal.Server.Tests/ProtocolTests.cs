using System.Net;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using ModelSeal.Hpke;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Tests;

/// <summary>
/// The one protocol definition (src/ModelSeal.Protocol) against what the server really does: its OpenAPI document
/// describes exactly the records' members, and publishing a version of a missing model creates the model.
/// </summary>
public sealed class ProtocolTests
{
    /// <summary>Protocol records the server only reads from others' answers (it writes ASP.NET Core's ProblemDetails).</summary>
    private static readonly HashSet<Type> ClientOnly = [typeof(ProblemResponse)];

    [Fact]
    public async Task The_openapi_document_describes_exactly_the_protocol_records()
    {
        await using TestServer server = await TestServer.StartAsync();
        Api document = await server.GetAsync("/openapi/v1.json");
        document.AssertStatus(HttpStatusCode.OK);
        JsonElement schemas = document.Json.GetProperty("components").GetProperty("schemas");
        var documented = schemas.EnumerateObject().ToDictionary(s => s.Name, s => s.Value, StringComparer.Ordinal);

        var records = ProtocolRecords().ToList();
        Assert.NotEmpty(records);
        var failures = new List<string>();
        foreach (Type record in records)
        {
            string name = SchemaName(record);
            if (!documented.Remove(name, out JsonElement schema))
            {
                failures.Add($"{name}: not in the OpenAPI document (is an endpoint declaring it?)");
                continue;
            }

            string[] expected = [.. ProtocolJson.Default.GetTypeInfo(record)!.Properties.Select(p => p.Name).Order(StringComparer.Ordinal)];
            string[] actual = [.. schema.GetProperty("properties").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal)];
            if (!expected.SequenceEqual(actual))
            {
                failures.Add($"{name}: the record has [{string.Join(", ", expected)}], the document [{string.Join(", ", actual)}]");
            }
        }

        // What is left must be the framework's problem bodies: no answer or request shape outside the protocol records.
        failures.AddRange(documented.Keys.Where(n => n is not ("ProblemDetails" or "HttpValidationProblemDetails")).Select(n => $"{n}: documented but not a protocol record"));
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [Fact]
    public async Task Publishing_a_version_of_a_missing_model_creates_the_model_audited()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        (Release first, ModelKey key) = await server.CreateVersionAsync(admin, "fresh");
        key.Dispose();
        Assert.Equal(("fresh", "1"), (first.ModelId, first.Version));

        Api models = await server.GetAsync("/v1/admin/models", admin);
        JsonElement model = Assert.Single(models.Json.GetProperty("items").EnumerateArray());
        Assert.Equal("fresh", model.GetProperty("modelId").GetString());

        Api audit = await server.GetAsync("/v1/admin/audit", admin);
        var changes = audit.Json.GetProperty("items").EnumerateArray()
            .Where(r => r.GetProperty("modelId").ValueKind == JsonValueKind.String)
            .Select(r => (r.GetProperty("event").GetString(), r.GetProperty("modelId").GetString(), r.GetProperty("version").GetString()))
            .ToList();
        Assert.Equal([("model.created", "fresh", null), ("version.created", "fresh", "1")], changes);

        // The model exists now: creating it again is a conflict, and a second version just follows.
        (await server.PostAsync("/v1/admin/models", new { modelId = "fresh" }, admin)).AssertProblem(HttpStatusCode.Conflict, "model-exists");
        using HpkeKeyPair publisher = HpkeKeyPair.Generate();
        (await server.PostAsync("/v1/admin/models/fresh/versions", new { publisherPublicKey = TestServer.Base64Url(publisher.PublicKey.Encoded.Span), nonce = ServerClient.Nonce(), protocol = 2 }, admin)).AssertStatus(HttpStatusCode.Created);
    }

    [Fact]
    public async Task Request_members_are_matched_exactly_and_numbers_are_json_numbers()
    {
        await using TestServer server = await TestServer.StartAsync();
        string admin = await server.AdminTokenAsync();
        await server.CreateModelAsync(admin, "m");

        Api quoted = await server.PostAsync("/v1/admin/licences", new { subject = "s", models = (string[])["m"], maxDevices = "3" }, admin);
        quoted.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Assert.True(quoted.Json.GetProperty("errors").TryGetProperty("$.maxDevices", out _), quoted.Text);

        Api pascal = await server.PostAsync("/v1/admin/models", new { ModelId = "n" }, admin);
        pascal.AssertProblem(HttpStatusCode.BadRequest, "invalid-request");
        Assert.True(pascal.Json.GetProperty("errors").TryGetProperty("modelId", out _), pascal.Text);
    }

    [Fact]
    public void Every_problem_code_has_a_status_and_title_in_the_servers_table()
    {
        string[] codes = [.. typeof(ProblemCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.Name != nameof(ProblemCodes.TypePrefix)).Select(f => (string)f.GetRawConstantValue()!)];
        Assert.NotEmpty(codes);
        Assert.All(codes, code => Assert.True(Http.Problems.IsKnown(code), code));
    }

    [Fact]
    public void A_reader_refuses_an_answer_without_a_member_the_protocol_always_sends()
    {
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize("""{"accessToken":"t","tokenType":"Bearer"}""", ProtocolJson.Default.TokenResponse));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize("""{"accessToken":null,"tokenType":"Bearer","expiresIn":60}""", ProtocolJson.Default.TokenResponse));
        Assert.NotNull(JsonSerializer.Deserialize("""{"accessToken":"t","tokenType":"Bearer","expiresIn":60}""", ProtocolJson.Default.TokenResponse));

        // Requests stay lenient: a missing field is reported by name by the server's validation.
        Assert.Equal(new TokenRequest(), JsonSerializer.Deserialize("{}", ProtocolJson.Default.TokenRequest));
    }

    private static IEnumerable<Type> ProtocolRecords()
    {
        foreach (Type type in typeof(ProtocolJson).Assembly.GetTypes().Where(t => t.Namespace == typeof(ProtocolJson).Namespace && !ClientOnly.Contains(t)))
        {
            if (type.GetMethod("<Clone>$") is null)
            {
                continue; // not a record
            }

            if (!type.IsGenericTypeDefinition)
            {
                yield return type;
                continue;
            }

            // A generic list answer: each closed form the context knows.
            foreach (JsonTypeInfo closed in ProtocolJson.Default.GetType().GetProperties()
                .Where(p => p.PropertyType.IsGenericType && p.PropertyType.GenericTypeArguments[0] is { IsGenericType: true } t && t.GetGenericTypeDefinition() == type)
                .Select(p => (JsonTypeInfo)p.GetValue(ProtocolJson.Default)!))
            {
                yield return closed.Type;
            }
        }
    }

    /// <summary>The schema name ASP.NET Core's OpenAPI generator gives a type (generic arguments joined with "Of").</summary>
    private static string SchemaName(Type type) =>
        type.IsGenericType ? type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)] + "Of" + string.Join("And", type.GenericTypeArguments.Select(SchemaName)) : type.Name;
}
