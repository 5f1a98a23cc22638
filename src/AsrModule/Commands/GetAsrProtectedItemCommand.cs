using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Lists protected items with their state, health and RPO.</summary>
[Cmdlet(VerbsCommon.Get, "AsrProtectedItem")]
[OutputType(typeof(AsrProtectedItem))]
public sealed class GetAsrProtectedItemCommand : AsrCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ProtectedItemNameCompleter))]
    [Alias("ItemName", "TargetName")]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        // One damaged record (item, its policy, its latest manifest) affects only its own item: a damaged item record
        // is a non-terminating VaultDataCorrupt error in its place, the others are listed (docs/design.md).
        List<Engine.Vault.VaultListEntry<AsrProtectedItem>>? entries = null;
        if (Name is null || Name.Length == 0)
        {
            WriteEntries(Await(ct => vault.Catalog.ListItemsAsync(ct, fromSnapshots: true)));
            return;
        }
        foreach (var name in Name)
        {
            // A plain name is looked up by its name claim: a few reads, whatever the vault holds (issue #15). Whatever
            // that lookup cannot settle (no such name, a damaged or altered record) is answered from the listing, as before.
            if (!WildcardPattern.ContainsWildcardCharacters(name) && LookUp(vault, name) is { } item)
            {
                WriteObject(item);
                continue;
            }
            entries ??= Await(ct => vault.Catalog.ListItemsAsync(ct, fromSnapshots: true));
            var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
            var matches = entries.Where(e => e.Name is not null && pattern.IsMatch(e.Name)).ToList();
            if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
                WriteError(ErrorMapping.ToErrorRecord(new AsrException(AsrErrorIds.ProtectedItemNotFound, AsrErrorKind.ObjectNotFound,
                    $"No protected item named '{name}' in the vault at '{vault.Location}'. Existing items: {string.Join(", ", entries.Select(i => i.Name ?? i.Key).DefaultIfEmpty("(none)"))}.", name), name));
            WriteEntries(matches);
        }
    }

    private AsrProtectedItem? LookUp(Engine.Vault.AsrVault vault, string name)
    {
        try { return Await(ct => vault.Catalog.GetItemAsync(name, ct)); }
        catch (AsrException ex) when (ex.ErrorId is AsrErrorIds.ProtectedItemNotFound or AsrErrorIds.VaultDataCorrupt) { return null; }
    }
}
