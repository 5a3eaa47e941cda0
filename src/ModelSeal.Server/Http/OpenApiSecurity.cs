using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace ModelSeal.Server.Http;

/// <summary>Declares the bearer-token scheme in the OpenAPI document.</summary>
internal sealed class OpenApiSecurity : IOpenApiDocumentTransformer
{
    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info.Title = "ModelSeal key server";
        document.Info.Description = "Releases model data keys, sealed with HPKE to a device's public key, against a licence token (docs/protocol.md).";
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes["bearer"] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "A token from POST /v1/token (scope keys or admin), or from a trusted issuer (TrustedIssuers; admin only for its AdminSubjects).",
        };
        document.Security ??= [];
        document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", document)] = [] });
        return Task.CompletedTask;
    }
}

/// <summary>Describes the JSON request bodies that handlers read themselves (<see cref="JsonRequestBodyMetadata"/>).</summary>
internal sealed class OpenApiJsonBodies : IOpenApiOperationTransformer
{
    public async Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        JsonRequestBodyMetadata? body = context.Description.ActionDescriptor.EndpointMetadata.OfType<JsonRequestBodyMetadata>().LastOrDefault();
        if (body is null)
        {
            return;
        }

        // A named component, as the answer bodies are, so that clients and tests find each protocol record by name.
        OpenApiSchema schema = await context.GetOrCreateSchemaAsync(body.Type, null, cancellationToken).ConfigureAwait(false);
        OpenApiDocument document = context.Document ?? throw new InvalidOperationException("The OpenAPI document is not available to operation transformers.");
        document.AddComponent(body.Type.Name, schema);

        // A protocol record nested in the body (a release's attestation evidence) gets its named component too.
        foreach (Type nested in body.Type.GetProperties().Select(p => Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType).Where(t => t.IsClass && t != typeof(string) && t.Namespace == body.Type.Namespace).Distinct())
        {
            document.AddComponent(nested.Name, await context.GetOrCreateSchemaAsync(nested, null, cancellationToken).ConfigureAwait(false));
        }
        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new OpenApiMediaType { Schema = new OpenApiSchemaReference(body.Type.Name, document) } },
        };
    }
}
