using AsrModule.Engine.Storage;
using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Creates a vault in a local directory or an Azure Blob Storage container.</summary>
[Cmdlet(VerbsCommon.New, "AsrVault", SupportsShouldProcess = true, DefaultParameterSetName = ByPath)]
[OutputType(typeof(AsrVault))]
public sealed class NewAsrVaultCommand : VaultLocationCmdlet
{
    [Parameter]
    [SecureStringTransformation]
    public SecureString? EncryptionKey { get; set; }

    protected override void ProcessRecord()
    {
        string target = SafeTarget();
        ForItem(target, () =>
        {
            var blob = BlobConnection();
            string location = TargetLocation(blob);
            // A vault directory under /proc, /sys, /dev or a system directory is refused before anything is created.
            if (blob is null) OutputLocation.EnsureAllowed(location, null, AsrErrorIds.VaultAccessDenied, "A vault directory");
            if (!ShouldProcess(location, "Create vault")) return;
            var store = OpenStore(blob);
            // A container the credential may create is created; a container SAS can only use an existing one.
            if (store is BlobVaultStore blobStore) Await(ct => blobStore.CreateContainerIfNotExistsAsync(ct));
            var vault = Await(ct => AsrVault.CreateAsync(store, PlainText(EncryptionKey), null, ct));
            VaultSession.Remember(vault);
            WriteObject(vault);
        });
    }
}
