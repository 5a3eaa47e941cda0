using Microsoft.Extensions.Options;
using ModelSeal.Protocol;

namespace ModelSeal.Client;

/// <summary>
/// Validates <see cref="ModelSealClientOptions"/> when the host starts: the required server address, the ranges of the
/// timeouts and retry settings, and the settings that go together. Written out by hand rather than with data
/// annotations, whose validation reflects over the options type (not trimming or NativeAOT safe).
/// </summary>
internal sealed class ModelSealClientOptionsValidator : IValidateOptions<ModelSealClientOptions>
{
    private readonly bool _signIn;

    public ModelSealClientOptionsValidator()
    {
    }

    /// <summary>A validator that knows whether the app's sign-in supplies the tokens (AddModelSealSignIn).</summary>
    public ModelSealClientOptionsValidator(IEnumerable<SignInRegistration> signIn)
    {
        _signIn = signIn.Any();
    }

    public ValidateOptionsResult Validate(string? name, ModelSealClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (string.IsNullOrEmpty(options.ServerUrl))
        {
            failures.Add("The ServerUrl field is required.");
        }
        else if (options.ServerUri is null)
        {
            failures.Add("ServerUrl must be an absolute http or https URL.");
        }
        else if (ServerAddress.Refusal(options.ServerUri, options.AllowInsecureHttp) is { } refusal)
        {
            failures.Add($"ServerUrl: {refusal}. Use https://, or set AllowInsecureHttp if TLS is terminated in front of that address.");
        }

        Range(failures, nameof(options.AttemptTimeout), options.AttemptTimeout, TimeSpan.FromMilliseconds(50), TimeSpan.FromMinutes(5));
        Range(failures, nameof(options.TotalTimeout), options.TotalTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(30));
        if (options.MaxRetryAttempts is < 0 or > 10)
        {
            failures.Add($"The field MaxRetryAttempts must be between 0 and 10 (it is {options.MaxRetryAttempts}).");
        }

        Range(failures, nameof(options.RetryBaseDelay), options.RetryBaseDelay, TimeSpan.Zero, TimeSpan.FromMinutes(1));
        Range(failures, nameof(options.MaxRetryDelay), options.MaxRetryDelay, TimeSpan.Zero, TimeSpan.FromMinutes(1));
        Range(failures, nameof(options.CircuitBreakDuration), options.CircuitBreakDuration, TimeSpan.FromMilliseconds(500), TimeSpan.FromMinutes(10));
        Range(failures, nameof(options.TokenRefreshMargin), options.TokenRefreshMargin, TimeSpan.Zero, TimeSpan.FromHours(1));
        if (options.TotalTimeout < options.AttemptTimeout)
        {
            failures.Add("TotalTimeout must not be shorter than AttemptTimeout.");
        }

        if ((options.LicenceId is null) != (options.CredentialFile is null))
        {
            failures.Add("LicenceId and CredentialFile go together: set both (or neither and register your own ITokenSource).");
        }

        if (_signIn && (options.LicenceId is not null || options.CredentialFile is not null))
        {
            failures.Add("The app's sign-in supplies the tokens (AddModelSealSignIn), so LicenceId and CredentialFile would never be used: remove them (no credential file ships with an app that signs its users in).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Range(List<string> failures, string field, TimeSpan value, TimeSpan min, TimeSpan max)
    {
        if (value < min || value > max)
        {
            failures.Add(string.Create(
                System.Globalization.CultureInfo.InvariantCulture,
                $"The field {field} must be between {min:c} and {max:c} (it is {value:c})."));
        }
    }
}

/// <summary>Registered by AddModelSealSignIn: tells the options validator that the app's sign-in supplies the tokens.</summary>
internal sealed class SignInRegistration
{
}
