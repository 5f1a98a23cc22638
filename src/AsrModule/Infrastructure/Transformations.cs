using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Policies;
using AsrModule.Engine.Vault;

namespace AsrModule.Infrastructure;

/// <summary>
/// What -Vault was given: a vault object, or a local vault path that is opened when the cmdlet runs
/// (so a bad path fails with the engine's own error id, e.g. VaultNotFound, not a binding error).
/// </summary>
public sealed class VaultArgument
{
    public VaultArgument(AsrVault vault) => Vault = vault;
    public VaultArgument(string path) => Path = path;

    public AsrVault? Vault { get; }
    public string? Path { get; }
    public override string ToString() => Vault?.Location ?? Path ?? "";
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
