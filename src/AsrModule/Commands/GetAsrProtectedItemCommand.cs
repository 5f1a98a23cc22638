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
        var entries = Await(ct => vault.Catalog.ListItemsAsync(ct));
        if (Name is null || Name.Length == 0)
        {
            WriteEntries(entries);
            return;
        }
        foreach (var name in Name)
        {
            var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
            var matches = entries.Where(e => e.Name is not null && pattern.IsMatch(e.Name)).ToList();
            if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
                WriteError(ErrorMapping.ToErrorRecord(new AsrException(AsrErrorIds.ProtectedItemNotFound, AsrErrorKind.ObjectNotFound,
                    $"No protected item named '{name}' in the vault at '{vault.Location}'. Existing items: {string.Join(", ", entries.Select(i => i.Name ?? i.Key).DefaultIfEmpty("(none)"))}.", name), name));
            WriteEntries(matches);
        }
    }
}
