// Public signatures naming System.Security.Cryptography types in each position that
// tests/ModelSeal.Architecture.Tests/PublicSignatures.cs reads, and non-public ones it must ignore: the checker's proof
// (PublicSignatureTests.Finds_exactly_the_fixture_mentions). Fixture.Crypto depends on no other Fixture namespace.

namespace Fixture.Crypto
{
    /// <summary>Names a cryptography type as its base type.</summary>
    public class DerivedException : System.Security.Cryptography.CryptographicException
    {
        public DerivedException()
        {
        }

        public DerivedException(string message)
            : base(message)
        {
        }

        public DerivedException(string message, System.Exception innerException)
            : base(message, innerException)
        {
        }
    }

    /// <summary>Names cryptography types in public and protected members, and in members no other assembly sees.</summary>
    public abstract class Members
    {
        public static readonly System.Collections.Generic.IReadOnlyList<System.Security.Cryptography.ECPoint[]> Points = [];

        private readonly System.Security.Cryptography.ECCurve _private = System.Security.Cryptography.ECCurve.NamedCurves.nistP256;

        public event System.EventHandler<System.Security.Cryptography.CryptographicException>? Failed;

        public System.Security.Cryptography.HashAlgorithmName Hash { get; set; }

        public int this[System.Security.Cryptography.ECParameters parameters] => parameters.D?.Length ?? 0;

        internal System.Security.Cryptography.ECDsa? Internal { get; set; }

        public static System.Security.Cryptography.ECDiffieHellman? Returned() => null;

        public static int Takes(System.Security.Cryptography.ECParameters? parameters) => parameters is null ? 0 : 1;

        public static T? Constrained<T>()
            where T : System.Security.Cryptography.AsymmetricAlgorithm => null;

        public string Curve() => _private.Oid.FriendlyName ?? string.Empty;

        public void Raise() => Failed?.Invoke(this, new System.Security.Cryptography.CryptographicException());

        internal static System.Security.Cryptography.ECDiffieHellman? InternalMethod() => null;

        protected abstract void Overridden(ref System.Security.Cryptography.ECCurve curve);

        private protected abstract System.Security.Cryptography.ECDsa? PrivateProtected();

        /// <summary>A protected nested type is visible to derived classes in other assemblies.</summary>
        protected sealed class NestedVisible
        {
            public System.Security.Cryptography.Aes? Key { get; set; }
        }

        /// <summary>A private nested type is not.</summary>
        private sealed class NestedHidden
        {
            public System.Security.Cryptography.Aes? Key { get; set; }
        }
    }

    /// <summary>Names a cryptography interface.</summary>
    public sealed class Transform : System.Security.Cryptography.ICryptoTransform
    {
        public bool CanReuseTransform => true;

        public bool CanTransformMultipleBlocks => true;

        public int InputBlockSize => 1;

        public int OutputBlockSize => 1;

        public int TransformBlock(byte[] inputBuffer, int inputOffset, int inputCount, byte[] outputBuffer, int outputOffset) => inputCount;

        public byte[] TransformFinalBlock(byte[] inputBuffer, int inputOffset, int inputCount) => [];

        public void Dispose()
        {
        }
    }

    /// <summary>Not visible outside the assembly: nothing here counts.</summary>
    internal static class Hidden
    {
        public static System.Security.Cryptography.ECDiffieHellman? Returned() => null;
    }
}
