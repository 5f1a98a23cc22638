using System.Reflection;
using System.Runtime.Loader;

namespace AsrModule.Loader;

/// <summary>
/// The module's own assembly load context. Runbooks and admin sessions load other modules first (the
/// Az modules pin their own Azure.Core and Azure.Identity); everything AsrModule ships — its cmdlets,
/// its engine and their dependencies, from the module's Dependencies/ folder — loads here instead of
/// into the shared default context, so neither side can break the other. Only what the host itself
/// provides (System.Management.Automation, the framework) comes from the default context.
/// </summary>
public sealed class ModuleLoadContext : AssemblyLoadContext
{
    private static readonly object Gate = new();
    private static ModuleLoadContext? _instance;
    private readonly string _dependencies;

    private ModuleLoadContext(string dependencies) : base("AsrModule", isCollectible: false) => _dependencies = dependencies;

    /// <summary>Loads the cmdlet assembly (once per process) and returns it for Import-Module -Assembly.</summary>
    public static Assembly LoadModule(string dependenciesDirectory)
    {
        lock (Gate)
        {
            _instance ??= new ModuleLoadContext(Path.GetFullPath(dependenciesDirectory));
            return _instance.LoadFromAssemblyName(new AssemblyName("AsrModule"));
        }
    }

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        // The host's own assemblies must be shared: a cmdlet is only a cmdlet if its base class is the host's.
        if (assemblyName.Name is "System.Management.Automation" or "Microsoft.PowerShell.Commands.Utility") return null;
        string candidate = Path.Combine(_dependencies, assemblyName.Name + ".dll");
        return File.Exists(candidate) ? LoadFromAssemblyPath(candidate) : null;
    }

    /// <summary>
    /// Native libraries of the dependencies (SkiaSharp's libSkiaSharp for the report's charts): next to them, or in
    /// Dependencies/runtimes/&lt;rid&gt;/native/ as NuGet lays them out, by the platform's file name.
    /// </summary>
    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        foreach (string candidate in NativeCandidates(unmanagedDllName))
            if (File.Exists(candidate)) return LoadUnmanagedDllFromPath(candidate);
        return IntPtr.Zero;
    }

    private IEnumerable<string> NativeCandidates(string name)
    {
        string[] files = OperatingSystem.IsWindows() ? [name, name + ".dll"]
            : OperatingSystem.IsMacOS() ? [name, name + ".dylib", "lib" + name + ".dylib"]
            : [name, name + ".so", "lib" + name + ".so"];
        string arch = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        string[] rids = OperatingSystem.IsWindows() ? [$"win-{arch}"]
            : OperatingSystem.IsMacOS() ? ["osx", $"osx-{arch}"]
            : File.Exists("/etc/alpine-release") ? [$"linux-musl-{arch}", $"linux-{arch}"] : [$"linux-{arch}"];
        foreach (string file in files)
        {
            yield return Path.Combine(_dependencies, file);
            foreach (string rid in rids) yield return Path.Combine(_dependencies, "runtimes", rid, "native", file);
        }
    }
}
