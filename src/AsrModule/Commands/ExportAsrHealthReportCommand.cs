using System.Management.Automation;
using AsrModule.Engine.Errors;
using AsrModule.Infrastructure;
using AsrModule.Reports;

namespace AsrModule.Commands;

/// <summary>
/// Writes the vault's health report: one self-contained HTML file (no network at view time) with every item's state,
/// health and RPO, RPO charts, points per day by consistency, vault size over time, boot-verified drills with their
/// screenshots, plan drills' recovery time, jobs, failures and events.
/// </summary>
[Cmdlet(VerbsData.Export, "AsrHealthReport", SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo))]
public sealed class ExportAsrHealthReportCommand : AsrCmdlet
{
    /// <summary>The HTML file to write.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>The period the report covers, in days back from now (default 14).</summary>
    [Parameter]
    [ValidateRange(1, 366)]
    public int Days { get; set; } = 14;

    /// <summary>RPO charts for at most this many items, the worst first (default 50).</summary>
    [Parameter]
    [ValidateRange(0, 10000)]
    public int MaximumItemCharts { get; set; } = 50;

    /// <summary>Refuses to replace an existing file.</summary>
    [Parameter]
    public SwitchParameter NoClobber { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        string full = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        ForItem(full, () =>
        {
            if (Directory.Exists(full) || (NoClobber && File.Exists(full)))
                throw new AsrException(AsrErrorIds.ExportDestinationExists, AsrErrorKind.ResourceExists,
                    $"'{full}' exists{(NoClobber ? " and -NoClobber was given" : " and is a directory")}; choose another -Path.", full);
            string? directory = System.IO.Path.GetDirectoryName(full);
            if (directory is not null && !Directory.Exists(directory))
                throw new AsrException(AsrErrorIds.ExportDestinationInvalid, AsrErrorKind.ObjectNotFound, $"The directory '{directory}' does not exist; create it or choose another -Path.", full);
            if (!ShouldProcess(full, $"Write the health report of the vault at '{vault.Location}' (the last {Days} day(s))")) return;
            var data = Await(ct => new HealthReportCollector(vault).CollectAsync(Days, null, ct));
            string html = HealthReportHtml.Render(data, MaximumItemCharts);
            // Written whole or not at all: a scheduled report never leaves half a page behind.
            string temporary = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
            File.WriteAllText(temporary, html);
            File.Move(temporary, full, overwrite: true);
            foreach (var skipped in data.Skipped) WriteWarning($"Not in the report (damaged or not valid): {skipped}");
            WriteVerbose($"Health report of {data.Items.Count} item(s), {data.Drills.Count} drill(s), {data.Jobs.Count} job(s), {data.Events.Count} event(s): {full}");
            WriteObject(new FileInfo(full));
        });
    }
}
