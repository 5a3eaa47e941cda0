using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace ModelSeal.Pkcs11;

/// <summary>
/// A PKCS#11 module loaded (C_Initialize) once per process and path, shared and reference-counted: a module may be
/// initialised only once per process, and C_Finalize would end every other user's sessions. One source file, compiled
/// into the key server (its master and signing keys) and into ModelSeal.Client.Pkcs11 (the device key): each assembly
/// has its own copy of the registry, so a process that used both on the same module would initialise it twice.
/// </summary>
internal sealed class Pkcs11Module
{
    private static readonly Dictionary<string, Pkcs11Module> Loaded = new(StringComparer.Ordinal);
    private static readonly Lock LoadLock = new();
    private static readonly string[] LibdlCandidates = ["libdl.so.2", "libc.so.6", "libdl.so"];
    private static bool _resolverSet;
    private readonly string _path;
    private int _references;

    private Pkcs11Module(string path, Pkcs11InteropFactories factories, IPkcs11Library library)
    {
        _path = path;
        Factories = factories;
        Library = library;
    }

    public Pkcs11InteropFactories Factories { get; }

    /// <summary>
    /// Held while token objects are created or searched: rare operations (start, new versions, rotation), serialised
    /// per module because SoftHSM2's file object store has been seen failing a key generation (CKR_GENERAL_ERROR)
    /// while other sessions of the process generated or searched at the same time.
    /// </summary>
    public Lock ObjectLock { get; } = new();

    public IPkcs11Library Library { get; }

    /// <summary>True while the module at <paramref name="path"/> is loaded by this assembly (some reference is held).</summary>
    public static bool IsLoaded(string path)
    {
        lock (LoadLock)
        {
            return Loaded.ContainsKey(Path.GetFullPath(path));
        }
    }

    public static Pkcs11Module Acquire(string path)
    {
        string full = Path.GetFullPath(path);
        lock (LoadLock)
        {
            ResolveLibdl();
            if (!Loaded.TryGetValue(full, out Pkcs11Module? module))
            {
                var factories = new Pkcs11InteropFactories();
                module = new Pkcs11Module(full, factories, factories.Pkcs11LibraryFactory.LoadPkcs11Library(factories, full, AppType.MultiThreaded));
                Loaded[full] = module;
            }

            module._references++;
            return module;
        }
    }

    /// <summary>
    /// Pkcs11Interop 5.3 P/Invokes dlopen from "libdl", which glibc 2.34+ systems (Debian 12) ship only as
    /// <c>libdl.so.2</c> (the unversioned name comes with libc6-dev): resolve it to the versioned library, or to libc,
    /// where dlopen lives since glibc 2.34.
    /// </summary>
    private static void ResolveLibdl()
    {
        if (_resolverSet || !OperatingSystem.IsLinux())
        {
            return;
        }

        _resolverSet = true;
        try
        {
            System.Runtime.InteropServices.NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, (name, assembly, searchPath) =>
            {
                if (!string.Equals(name, "libdl", StringComparison.Ordinal))
                {
                    return IntPtr.Zero;
                }

                foreach (string candidate in LibdlCandidates)
                {
                    if (System.Runtime.InteropServices.NativeLibrary.TryLoad(candidate, assembly, searchPath, out IntPtr handle))
                    {
                        return handle;
                    }
                }

                return IntPtr.Zero;
            });
        }
        catch (InvalidOperationException)
        {
            // A resolver is already set for Pkcs11Interop (by the host application): it decides.
        }
    }

    public void Release()
    {
        lock (LoadLock)
        {
            if (--_references == 0)
            {
                Loaded.Remove(_path);
                Library.Dispose();
            }
        }
    }
}
