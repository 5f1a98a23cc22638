using System.Text;
using System.Text.RegularExpressions;
using AsrModule.Engine.Failover.Boot;
using Xunit;

namespace AsrModule.Tests.Unit.Boot;

/// <summary>The serial console as the boot verifier reads it: guest bytes, untrusted, arriving in pieces.</summary>
public sealed class BootConsoleTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "asr-console-" + Guid.NewGuid().ToString("N") + ".log");

    public void Dispose() => File.Delete(_path);

    private void Append(string text) => File.AppendAllText(_path, text);

    [Fact]
    public void A_pattern_matches_only_complete_lines_and_each_line_once()
    {
        var console = new BootConsole(_path);
        var pattern = new Regex("^READY$");
        Assert.False(console.Refresh()); // no file yet
        Append("booting\nREA");
        console.Refresh();
        Assert.Null(console.FindLine(pattern));
        Append("DY");
        console.Refresh();
        Assert.Null(console.FindLine(pattern)); // "READY" is there, but its line has not ended
        Append("\r\nmore\n");
        console.Refresh();
        Assert.Equal("READY", console.FindLine(pattern));
        Assert.Null(console.FindLine(pattern)); // searched already
    }

    [Fact]
    public void Control_characters_and_escape_sequences_are_dropped_and_the_tail_is_bounded()
    {
        var console = new BootConsole(_path);
        Append("a\u001b[2J\u001b[1;1Hb\u0007c\u0000\n");
        for (int i = 0; i < 100; i++) Append($"line {i}\n");
        console.Refresh();
        Assert.StartsWith("a[2J[1;1Hbc\n", console.Text);
        string tail = console.Tail(3);
        Assert.Equal("line 97\nline 98\nline 99", tail);
        Assert.DoesNotContain('\u001b', console.Text);
    }

    [Fact]
    public void Keeps_at_most_a_MiB_of_a_chatty_guest()
    {
        var console = new BootConsole(_path);
        var line = new string('x', 1023) + "\n";
        var block = new StringBuilder();
        for (int i = 0; i < 1024; i++) block.Append(line);
        Append(block.ToString());
        Append(block.ToString());
        Append("READY\n");
        while (console.Refresh()) { }
        Assert.True(console.Text.Length <= BootConsole.MaximumKept);
        Assert.Equal("READY", console.FindLine(new Regex("READY")));
    }
}
