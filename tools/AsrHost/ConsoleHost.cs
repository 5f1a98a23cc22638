using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;

namespace AsrModule.Host;

/// <summary>
/// A minimal console PSHost, so Out-Default renders the module's format views and Write-Progress is
/// visible, as in pwsh. pwsh itself cannot be installed on these machines; this host runs the real
/// PowerShell 7.6 engine in-process.
/// </summary>
internal sealed class ConsoleHost : PSHost
{
    private readonly ConsoleUI _ui = new();
    public int? ExitCode { get; private set; }
    public override CultureInfo CurrentCulture => CultureInfo.CurrentCulture;
    public override CultureInfo CurrentUICulture => CultureInfo.CurrentUICulture;
    public override Guid InstanceId { get; } = Guid.NewGuid();
    public override string Name => "AsrHost";
    public override PSHostUserInterface UI => _ui;
    public override Version Version => new(1, 0);
    public override void EnterNestedPrompt() => throw new NotSupportedException();
    public override void ExitNestedPrompt() => throw new NotSupportedException();
    public override void NotifyBeginApplication() { }
    public override void NotifyEndApplication() { }
    public override void SetShouldExit(int exitCode) => ExitCode = exitCode;

    private sealed class ConsoleUI : PSHostUserInterface
    {
        private readonly RawUI _raw = new();
        private readonly Dictionary<long, int> _lastDecile = new();
        public override PSHostRawUserInterface RawUI => _raw;
        public override string ReadLine() => Console.ReadLine() ?? "";
        public override SecureString ReadLineAsSecureString()
        {
            var s = new SecureString();
            foreach (char c in ReadLine()) s.AppendChar(c);
            return s;
        }
        // A host applies $PSStyle.OutputRendering itself: strip VT sequences when output is captured.
        private static string Render(string value) => GetOutputString(value, supportsVirtualTerminal: !Console.IsOutputRedirected);
        public override void Write(string value) => Console.Write(Render(value));
        public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) => Console.Write(Render(value));
        public override void WriteLine(string value) => Console.WriteLine(Render(value));
        public override void WriteErrorLine(string value) => Console.Error.WriteLine(Render(value));
        public override void WriteDebugLine(string message) => Console.WriteLine("DEBUG: " + message);
        public override void WriteVerboseLine(string message) => Console.WriteLine("VERBOSE: " + message);
        public override void WriteWarningLine(string message) => Console.WriteLine("WARNING: " + message);

        /// <summary>Progress as a line per 25%, readable in logs (no cursor tricks).</summary>
        public override void WriteProgress(long sourceId, ProgressRecord record)
        {
            if (record.RecordType == ProgressRecordType.Completed) { _lastDecile.Remove(record.ActivityId); return; }
            int quarter = Math.Max(0, record.PercentComplete) / 25;
            if (_lastDecile.TryGetValue(record.ActivityId, out var last) && last == quarter) return;
            _lastDecile[record.ActivityId] = quarter;
            Console.WriteLine($"  [{Math.Max(0, record.PercentComplete),3}%] {record.Activity}: {record.StatusDescription}");
        }

        public override Dictionary<string, PSObject> Prompt(string caption, string message, System.Collections.ObjectModel.Collection<FieldDescription> descriptions) =>
            throw new NotSupportedException("AsrHost is non-interactive: pass every mandatory parameter.");
        public override int PromptForChoice(string caption, string message, System.Collections.ObjectModel.Collection<ChoiceDescription> choices, int defaultChoice) =>
            throw new NotSupportedException($"AsrHost is non-interactive; '{caption}' needs -Confirm:$false or -Force.");
        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) => throw new NotSupportedException();
        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName, PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) => throw new NotSupportedException();
    }

    private sealed class RawUI : PSHostRawUserInterface
    {
        public override ConsoleColor BackgroundColor { get; set; } = ConsoleColor.Black;
        public override ConsoleColor ForegroundColor { get; set; } = ConsoleColor.Gray;
        public override Size BufferSize { get; set; } = new(Width(), 9999);
        public override Coordinates CursorPosition { get; set; }
        public override int CursorSize { get; set; }
        public override bool KeyAvailable => false;
        public override Size MaxPhysicalWindowSize => new(Width(), 50);
        public override Size MaxWindowSize => new(Width(), 50);
        public override Coordinates WindowPosition { get; set; }
        public override Size WindowSize { get; set; } = new(Width(), 50);
        public override string WindowTitle { get; set; } = "AsrHost";
        private static int Width()
        {
            try { return Console.IsOutputRedirected ? 160 : Math.Max(80, Console.WindowWidth); } catch (IOException) { return 160; }
        }
        public override void FlushInputBuffer() { }
        public override BufferCell[,] GetBufferContents(Rectangle rectangle) => throw new NotSupportedException();
        public override KeyInfo ReadKey(ReadKeyOptions options) => throw new NotSupportedException();
        public override void ScrollBufferContents(Rectangle source, Coordinates destination, Rectangle clip, BufferCell fill) { }
        public override void SetBufferContents(Coordinates origin, BufferCell[,] contents) { }
        public override void SetBufferContents(Rectangle rectangle, BufferCell fill) { }
    }
}
