# Real qemu-system-x86_64 processes for QemuSources.Tests.ps1, driven over QMP from PowerShell.
# Core cmdlets and .NET only (no ConvertTo-Json): QMP messages are parsed with System.Text.Json.
#
# A VM here is QEMU without a guest (-machine none) holding one raw image open as drive0. Writes go
# through QEMU's block layer (HMP qemu-io), exactly like a guest's, so they mark dirty bitmaps and meet
# fleecing's copy-before-write. Each QEMU gets two QMP monitors: QmpSocket for ASR (the tracker holds
# it for the whole cycle, and a QMP socket serves one client) and a control monitor the test drives.

function Find-TestExecutable([string]$Name) {
    foreach ($dir in ([string]$env:PATH).Split([IO.Path]::PathSeparator)) {
        if ($dir -and [IO.File]::Exists([IO.Path]::Combine($dir, $Name))) { return [IO.Path]::Combine($dir, $Name) }
    }
    $null
}

function ConvertTo-TestJsonString([string]$Value) { '"' + $Value.Replace('\', '\\').Replace('"', '\"') + '"' }

function Connect-TestQmp([string]$Path, [Diagnostics.Process]$Process, [int]$TimeoutSeconds = 30) {
    <# Connects to a QMP socket (retrying until QEMU listens), reads the greeting and enters command mode. #>
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        if ($Process -and $Process.HasExited) { throw "QEMU exited with $($Process.ExitCode) before its QMP socket $Path answered." }
        $socket = [Net.Sockets.Socket]::new([Net.Sockets.AddressFamily]::Unix, [Net.Sockets.SocketType]::Stream, [Net.Sockets.ProtocolType]::Unspecified)
        try {
            $socket.Connect([Net.Sockets.UnixDomainSocketEndPoint]::new($Path))
            break
        } catch {
            $socket.Dispose()
            if ([DateTime]::UtcNow -gt $deadline) { throw "QMP socket $Path did not answer within $TimeoutSeconds s: $($_.Exception.Message)" }
            [Threading.Thread]::Sleep(20)
        }
    }
    $qmp = [pscustomobject]@{
        Path    = $Path
        Socket  = $socket
        Decoder = [Text.Encoding]::UTF8.GetDecoder()
        Pending = [Text.StringBuilder]::new()
        Events  = [Collections.Generic.List[object]]::new()
    }
    $greeting = Read-TestQmpMessage $qmp 30000
    $version = [Text.Json.JsonElement]::new()
    if ($null -eq $greeting -or -not $greeting.TryGetProperty('QMP', [ref]$version)) { throw "No QMP greeting on $Path." }
    $null = Invoke-TestQmp $qmp 'qmp_capabilities'
    $qmp
}

function Read-TestQmpMessage($Qmp, [int]$TimeoutMilliseconds) {
    <# The next JSON message (a JsonElement), or $null when none arrives in time. #>
    $deadline = [DateTime]::UtcNow.AddMilliseconds($TimeoutMilliseconds)
    $bytes = [byte[]]::new(65536)
    $chars = [char[]]::new(65536)
    while ($true) {
        $text = $Qmp.Pending.ToString()
        $newline = $text.IndexOf("`n")
        if ($newline -ge 0) {
            [void]$Qmp.Pending.Remove(0, $newline + 1)
            $line = $text.Substring(0, $newline).Trim()
            if ($line.Length -gt 0) { return [Text.Json.JsonDocument]::Parse($line).RootElement }
            continue
        }
        $left = ($deadline - [DateTime]::UtcNow).TotalMilliseconds
        if ($left -le 0) { return $null }
        if (-not $Qmp.Socket.Poll([int]([Math]::Min($left, 1000) * 1000), [Net.Sockets.SelectMode]::SelectRead)) { continue }
        $n = $Qmp.Socket.Receive($bytes)
        if ($n -eq 0) { throw "QEMU closed the QMP connection $($Qmp.Path)." }
        $count = $Qmp.Decoder.GetChars($bytes, 0, $n, $chars, 0)
        [void]$Qmp.Pending.Append($chars, 0, $count)
    }
}

function Invoke-TestQmp($Qmp, [string]$Command, [string]$ArgumentsJson) {
    <# Runs a QMP command and returns its "return" value; events read meanwhile are kept in $Qmp.Events. #>
    $message = '{"execute":' + (ConvertTo-TestJsonString $Command) + $(if ($ArgumentsJson) { ',"arguments":' + $ArgumentsJson }) + '}' + "`n"
    [void]$Qmp.Socket.Send([Text.Encoding]::UTF8.GetBytes($message))
    while ($true) {
        $reply = Read-TestQmpMessage $Qmp 60000
        if ($null -eq $reply) { throw "QEMU did not answer $Command on $($Qmp.Path) within 60 s." }
        $value = [Text.Json.JsonElement]::new()
        if ($reply.TryGetProperty('event', [ref]$value)) { $Qmp.Events.Add($reply); continue }
        if ($reply.TryGetProperty('error', [ref]$value)) { throw "QMP $Command failed: $($value.GetRawText())" }
        if ($reply.TryGetProperty('return', [ref]$value)) { return $value }
        throw "Unexpected QMP message: $($reply.GetRawText())"
    }
}

function Wait-TestQmpEvent($Qmp, [scriptblock]$Match, [int]$TimeoutSeconds = 30) {
    <# Waits for an event that $Match (given the event as $args[0]) accepts; looks at events already read first. #>
    foreach ($e in $Qmp.Events) { if (& $Match $e) { return $e } }
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        $m = Read-TestQmpMessage $Qmp 200
        if ($null -eq $m) { continue }
        $name = [Text.Json.JsonElement]::new()
        if (-not $m.TryGetProperty('event', [ref]$name)) { throw "Unexpected QMP message while waiting for an event: $($m.GetRawText())" }
        $Qmp.Events.Add($m)
        if (& $Match $m) { return $m }
    }
    throw "No matching QMP event on $($Qmp.Path) within $TimeoutSeconds s; seen: $(@($Qmp.Events | ForEach-Object { $_.GetProperty('event').GetString() }) -join ', ')"
}

function Get-TestQmpEventNames($Qmp) { @($Qmp.Events | ForEach-Object { $_.GetProperty('event').GetString() }) }

function Start-TestQemu([string]$Directory, [string]$Disk) {
    <# Starts QEMU holding $Disk as drive0; returns the VM (Process, QmpSocket for ASR, Control monitor, Disk). #>
    $qemu = Find-TestExecutable 'qemu-system-x86_64'
    if (-not $qemu) { throw 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86).' }
    [void][IO.Directory]::CreateDirectory($Directory)
    $qmpSocket = [IO.Path]::Combine($Directory, 'qmp.sock')
    $controlSocket = [IO.Path]::Combine($Directory, 'control.sock')
    $psi = [Diagnostics.ProcessStartInfo]::new($qemu)
    foreach ($a in @('-machine', 'none', '-nodefaults', '-display', 'none',
            '-qmp', "unix:$qmpSocket,server=on,wait=off",
            '-qmp', "unix:$controlSocket,server=on,wait=off",
            '-drive', "if=none,id=drive0,file=$Disk,format=raw")) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
    $process = [Diagnostics.Process]::Start($psi)
    # qemu-io prints each write on QEMU's stdout: drain it, or QEMU blocks once the pipe is full.
    $null = $process.StandardOutput.BaseStream.CopyToAsync([IO.Stream]::Null)
    $stderr = $process.StandardError.ReadToEndAsync()
    $vm = [pscustomobject]@{ Process = $process; QmpSocket = $qmpSocket; ControlSocket = $controlSocket; Disk = $Disk; Control = $null; StdErr = $stderr }
    try { $vm.Control = Connect-TestQmp $controlSocket $process }
    catch {
        Stop-TestQemu $vm
        throw "QEMU did not start: $($_.Exception.Message) $(if ($stderr.IsCompleted) { $stderr.Result })"
    }
    $vm
}

function Stop-TestQemu($Vm) {
    if (-not $Vm) { return }
    if ($Vm.Control) { $Vm.Control.Socket.Dispose() }
    try { if (-not $Vm.Process.HasExited) { $Vm.Process.Kill($true) }; [void]$Vm.Process.WaitForExit(10000) } catch [InvalidOperationException] { }
    $Vm.Process.Dispose()
}

function Write-TestQemu($Vm, [long]$Offset, [long]$Length, [byte]$Pattern) {
    <# Writes $Length bytes of $Pattern at $Offset of drive0 through QEMU's block layer. #>
    $line = "qemu-io drive0 `"write -P 0x$($Pattern.ToString('x2')) $Offset $Length`""
    $out = Invoke-TestQmp $Vm.Control 'human-monitor-command' ('{"command-line":' + (ConvertTo-TestJsonString $line) + '}')
    # qemu-io reports success on QEMU's stdout; the monitor only answers with errors.
    $text = $out.GetString()
    if ($text) { throw "qemu-io write failed: $text" }
}

function Test-TestQemuRunning($Vm) { (Invoke-TestQmp $Vm.Control 'query-status').GetProperty('running').GetBoolean() }
