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
        var items = Await(ct => vault.GetItemsAsync(ct));
        if (Name is null || Name.Length == 0)
        {
            WriteObject(items, enumerateCollection: true);
            return;
        }
        foreach (var name in Name)
        {
            var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
            var matches = items.Where(i => pattern.IsMatch(i.Name)).ToList();
            if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
                WriteError(ErrorMapping.ToErrorRecord(new AsrException(AsrErrorIds.ProtectedItemNotFound, AsrErrorKind.ObjectNotFound,
                    $"No protected item named '{name}' in the vault at '{vault.Location}'. Existing items: {string.Join(", ", items.Select(i => i.Name).DefaultIfEmpty("(none)"))}.", name), name));
            WriteObject(matches, enumerateCollection: true);
        }
    }
}
