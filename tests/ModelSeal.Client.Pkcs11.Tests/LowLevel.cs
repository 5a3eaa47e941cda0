using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ModelSeal.Client.Pkcs11.Tests;

/// <summary>
/// Pkcs11Interop's low-level API on the already loaded module (the same library handle; it neither initialises nor
/// finalises the module): the token's own return values, which the high-level API folds into "cannot be read".
/// </summary>
internal static class LowLevel
{
    /// <summary>The return value of C_GetAttributeValue asking the size of <paramref name="attribute"/> of <paramref name="handle"/>.</summary>
    public static CKR GetAttributeReturnValue(string modulePath, ISession session, IObjectHandle handle, CKA attribute)
    {
        // LowLevelAPI80: 8-byte CK_ULONG, natural structure packing (64-bit Linux and macOS, where the tests run).
        Assert.True(Platform.NativeULongSize == 8 && Platform.StructPackingSize == 0, "The low-level check is written for 64-bit Unix.");
        using var library = new Net.Pkcs11Interop.LowLevelAPI80.Pkcs11Library(modulePath);
        Net.Pkcs11Interop.LowLevelAPI80.CK_ATTRIBUTE[] template = [Net.Pkcs11Interop.LowLevelAPI80.CkaUtils.CreateAttribute(attribute)];
        return library.C_GetAttributeValue(session.SessionId, handle.ObjectId, template, (ulong)template.Length);
    }
}
