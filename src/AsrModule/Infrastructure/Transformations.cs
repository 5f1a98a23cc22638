using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Policies;
using AsrModule.Engine.Vault;

namespace AsrModule.Infrastructure;

/// <summary>Lets -Vault take a vault object or a local vault path.</summary>
public sealed class VaultTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object value = inputData is PSObject pso ? pso.BaseObject : inputData;
        if (value is AsrVault) return value;
        if (value is string path)
        {
            string full = engineIntrinsics.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
            return VaultSession.Find(Path.GetFullPath(full))
                ?? AsrVault.OpenLocalAsync(full, null).GetAwaiter().GetResult();
        }
        throw new ArgumentTransformationMetadataException($"-Vault takes a vault (from New-AsrVault/Connect-AsrVault) or a vault path, not {value?.GetType().Name ?? "null"}.");
    }
}

/// <summary>Lets -Policy take a policy object or a policy name.</summary>
public sealed class PolicyNameTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object value = inputData is PSObject pso ? pso.BaseObject : inputData;
        return value switch
        {
            AsrPolicy p => p.Name,
            string s => s,
            _ => throw new ArgumentTransformationMetadataException($"-Policy takes a policy object (New-AsrPolicy/Get-AsrPolicy) or a policy name, not {value?.GetType().Name ?? "null"}."),
        };
    }
}

/// <summary>
/// Lets -EncryptionKey take a SecureString or, for scripts where ConvertTo-SecureString is not
/// available, a plain string (which is converted at once and not kept).
/// </summary>
public sealed class SecureStringTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData)
    {
        object value = inputData is PSObject pso ? pso.BaseObject : inputData;
        if (value is SecureString) return value;
        if (value is string s)
        {
            var secure = new SecureString();
            foreach (char c in s) secure.AppendChar(c);
            secure.MakeReadOnly();
            return secure;
        }
        throw new ArgumentTransformationMetadataException("-EncryptionKey takes a SecureString or a string.");
    }
}
