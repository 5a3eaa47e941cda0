using System.Buffers.Text;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using ModelSeal.Hpke;
using ModelSeal.Protocol;
using ModelSeal.Server.Domain;
using ModelSeal.Server.Security;

namespace ModelSeal.Server.Http;

/// <summary>
/// Signs what the server says about keys (docs/protocol.md section 2.2) with its answer key: every release and every
/// refusal of a key request, and the refusals of a token request that carries a nonce. The statements are built by
/// <see cref="SignedAnswers"/>, the one encoding clients check.
/// </summary>
internal sealed class AnswerSigning(SigningKeys keys)
{
    /// <summary>The problem-document members of a signed refusal.</summary>
    public const string KidMember = "kid";

    /// <inheritdoc cref="KidMember"/>
    public const string SignatureMember = "signature";

    /// <summary>A released key (or a new version's key for its publisher), signed.</summary>
    public ReleaseResponse Released(ReleasedKey key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> recipient, string subject)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] statement = SignedAnswers.Released(nonce, recipient, key.ModelId, key.Version, key.KeyId, subject, key.LeaseExpiresAt, key.Enc, key.SealedKey);
        return new ReleaseResponse(
            key.ModelId, key.Version, key.KeyId, KeyRelease.Suite, Base64Url.EncodeToString(key.Enc), Base64Url.EncodeToString(key.SealedKey),
            Rfc3339.Format(key.LeaseExpiresAt), keys.Answer.KeyId, Sign(statement));
    }

    /// <summary>A refused key request, signed over what was asked.</summary>
    public ProblemHttpResult KeyRefused(Refused refused, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> recipient, string modelId, string version, string subject)
    {
        ArgumentNullException.ThrowIfNull(refused);
        return Signed(refused, SignedAnswers.Refused(nonce, recipient, modelId, version, subject, refused.Reason.Code()));
    }

    /// <summary>A refused token request, signed over its nonce and licence id.</summary>
    public ProblemHttpResult TokenRefused(Refused refused, ReadOnlySpan<byte> nonce, string licenceId)
    {
        ArgumentNullException.ThrowIfNull(refused);
        return Signed(refused, SignedAnswers.TokenRefusedStatement(nonce, licenceId, refused.Reason.Code()));
    }

    /// <summary>The request's nonce: 16 bytes in base64url, else null.</summary>
    public static byte[]? Nonce(string? text) => Callers.DecodeBase64Url(text) is { Length: SignedAnswers.NonceSize } nonce ? nonce : null;

    private ProblemHttpResult Signed(Refused refused, byte[] statement) =>
        Problems.Create(refused.Reason.Code(), refused.Detail, new Dictionary<string, object?>
        {
            [KidMember] = keys.Answer.KeyId,
            [SignatureMember] = Sign(statement),
        });

    private string Sign(byte[] statement) => Base64Url.EncodeToString(keys.Answer.SignHash(SHA256.HashData(statement)));
}
