using Microsoft.AspNetCore.Http.HttpResults;
using ModelSeal.Server.Configuration;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Http;
using ModelSeal.Protocol;

namespace ModelSeal.Server.Endpoints;

/// <summary>Validation of <c>POST /v1/admin/licences</c> bodies, naming every field at fault.</summary>
internal static class LicenceRequests
{
    private const string TimeHint = "Optional: an RFC 3339 time with offset, e.g. 2026-11-23T10:00:00Z.";

    public static (NewLicence? Licence, ProblemHttpResult? Problem) Validate(CreateLicenceRequest request, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(request.Subject) || request.Subject.Length > AdminApi.MaxSubjectLength || request.Subject.Any(char.IsControl))
        {
            errors["subject"] = [$"Required: 1 to {AdminApi.MaxSubjectLength} characters without control characters."];
        }

        List<string>? models = Models(request.Models);
        if (models is null)
        {
            errors["models"] = [$"Required: {ModelsRule}"];
        }

        DateTimeOffset notBefore = default, expiresAt = default;
        if (request.NotBefore is not null && !Rfc3339.TryParse(request.NotBefore, out notBefore))
        {
            errors["notBefore"] = [TimeHint];
        }

        if (request.ExpiresAt is not null && !Rfc3339.TryParse(request.ExpiresAt, out expiresAt))
        {
            errors["expiresAt"] = [TimeHint];
        }
        else if (request.ExpiresAt is not null && request.NotBefore is not null && !errors.ContainsKey("notBefore") && !Licences.IsValidTerm(notBefore, expiresAt))
        {
            errors["expiresAt"] = ["Must be later than notBefore."];
        }

        if (request.MaxDevices is not (>= 1 and <= AdminApi.MaxDevicesLimit))
        {
            errors["maxDevices"] = [$"Required: an integer from 1 to {AdminApi.MaxDevicesLimit}."];
        }

        if (request.Issuer is not null && !IsTrustedIssuer(request.Issuer, options))
        {
            errors["issuer"] = ["Optional: the exact 'iss' of a trusted external issuer (TrustedIssuers); the licence is then claimed only by that issuer's tokens whose 'sub' is the subject, and has no credential."];
        }

        if (request.AttestationPolicy is { Length: > 0 } policy && !options.Attestation.Policies.ContainsKey(policy))
        {
            errors["attestationPolicy"] = [PolicyRule(options)];
        }

        return errors.Count > 0
            ? (null, Problems.Invalid(errors))
            : (new NewLicence(request.Subject!, models!, request.NotBefore is null ? null : notBefore, request.ExpiresAt is null ? null : expiresAt, request.MaxDevices!.Value, request.Issuer, string.IsNullOrEmpty(request.AttestationPolicy) ? null : request.AttestationPolicy), null);
    }

    /// <summary>Validation of <c>PATCH /v1/admin/licences/{licenceId}</c> bodies: at least one member, each valid as in a new licence.</summary>
    public static (LicenceChange? Change, ProblemHttpResult? Problem) ValidateEdit(EditLicenceRequest request, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        DateTimeOffset expiresAt = default;
        bool removeExpiry = request.ExpiresAt is { Length: 0 };
        if (request.ExpiresAt is { Length: > 0 } && !Rfc3339.TryParse(request.ExpiresAt, out expiresAt))
        {
            errors["expiresAt"] = [TimeHint + " \"\" removes the licence's expiry."];
        }

        if (request.MaxDevices is not null and not (>= 1 and <= AdminApi.MaxDevicesLimit))
        {
            errors["maxDevices"] = [$"Optional: an integer from 1 to {AdminApi.MaxDevicesLimit}; lower than the devices registered keeps them and refuses new ones."];
        }

        List<string>? models = request.Models is null ? null : Models(request.Models);
        if (request.Models is not null && models is null)
        {
            errors["models"] = [$"Optional: {ModelsRule}"];
        }

        if (request.AttestationPolicy is { Length: > 0 } policy && !options.Attestation.Policies.ContainsKey(policy))
        {
            errors["attestationPolicy"] = [PolicyRule(options) + " \"\" removes the licence's policy."];
        }

        if (request.ExpiresAt is null && request.MaxDevices is null && request.Models is null && request.AttestationPolicy is null)
        {
            errors["expiresAt"] = ["Give at least one of expiresAt, maxDevices, models and attestationPolicy."];
        }

        return errors.Count > 0
            ? (null, Problems.Invalid(errors))
            : (new LicenceChange(request.ExpiresAt is { Length: > 0 } ? expiresAt : null, request.MaxDevices, models, request.AttestationPolicy, removeExpiry), null);
    }

    /// <summary>The rule for <c>attestationPolicy</c>, naming the configured policies.</summary>
    private static string PolicyRule(ServerOptions options) =>
        options.Attestation.Policies.Count == 0
            ? "Optional: the name of an attestation policy (Attestation:Policies), but none is configured."
            : $"Optional: the name of an attestation policy (Attestation:Policies): {string.Join(", ", options.Attestation.Policies.Keys.Order(StringComparer.Ordinal))}.";

    private static string ModelsRule => $"[\"*\"], or 1 to {AdminApi.MaxLicenceModels} model ids (identifiers, format.md 1.1).";

    /// <summary>A licence's models: <c>["*"]</c>, or distinct valid model ids; null when <paramref name="requested"/> breaks the rule.</summary>
    private static List<string>? Models(IReadOnlyList<string?>? requested)
    {
        List<string> models = requested?.Where(m => m is not null).Select(m => m!).ToList() ?? [];
        bool wildcard = models is ["*"];
        if (requested is null || models.Count == 0 || models.Count != requested.Count || models.Count > AdminApi.MaxLicenceModels ||
            (!wildcard && !models.TrueForAll(m => Identifier.IsValid(m, Identifier.MaxIdLength))))
        {
            return null;
        }

        return wildcard ? ["*"] : models.Distinct(StringComparer.Ordinal).ToList();
    }

    private static bool IsTrustedIssuer(string issuer, ServerOptions options) => options.TrustedIssuers.Any(trusted => string.Equals(issuer, trusted.Issuer, StringComparison.Ordinal));
}
