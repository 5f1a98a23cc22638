# A Pester 5 compatible subset for hosts where Pester cannot be installed (the PowerShell engine
# hosted in-process by the xunit runner). Test files written against it also run under real Pester.
# Semantics follow Pester 5: Describe/Context bodies run first to collect blocks; then BeforeAll,
# each It (with BeforeEach/AfterEach) and AfterAll run, in child scopes of their block.

$global:AsrPester = @{
    Mode       = 'Run'       # or 'Discover': collect It names (and their tags) without running anything
    ExcludeTag = @()         # as Pester's -ExcludeTag: Its with one of these tags (theirs or a block's) neither run nor report
    Results    = [System.Collections.Generic.List[object]]::new()
    Current    = $null
}

function New-AsrPesterBlock([string]$Name, $Parent, [string[]]$Tag) {
    # A block's tags apply to everything in it, as in Pester.
    $tags = @(if ($Parent) { $Parent.Tags }) + @($Tag | Where-Object { $_ })
    @{ Name = $Name; Parent = $Parent; Path = if ($Parent) { "$($Parent.Path) > $Name" } else { $Name }; Tags = $tags
       BeforeAll = @(); AfterAll = @(); BeforeEach = @(); AfterEach = @(); Children = [System.Collections.Generic.List[object]]::new() }
}

function Describe {
    param([Parameter(Mandatory, Position = 0)][string]$Name, [Parameter(Position = 1)][scriptblock]$Fixture, [string[]]$Tag, [switch]$Skip)
    $parent = $global:AsrPester.Current
    $block = New-AsrPesterBlock $Name $parent $Tag
    $block.Skip = [bool]$Skip -or ($parent -and $parent.Skip)
    if ($parent) { $parent.Children.Add(@{ Kind = 'Block'; Block = $block }) }
    $global:AsrPester.Current = $block
    try { . $Fixture } finally { $global:AsrPester.Current = $parent }
    if (-not $parent) {
        if ($global:AsrPester.Mode -eq 'Discover') { Add-AsrPesterDiscovered $block }
        else { Invoke-AsrPesterBlock $block }
    }
}

function Context {
    param([Parameter(Mandatory, Position = 0)][string]$Name, [Parameter(Position = 1)][scriptblock]$Fixture, [string[]]$Tag, [switch]$Skip)
    Describe -Name $Name -Fixture $Fixture -Tag $Tag -Skip:$Skip
}

function It {
    param([Parameter(Mandatory, Position = 0)][string]$Name, [Parameter(Position = 1)][scriptblock]$Test, [object[]]$ForEach, [string[]]$Tag, [switch]$Skip)
    $block = $global:AsrPester.Current
    if (-not $block) { throw "It '$Name' must be inside Describe or Context." }
    $tags = @($block.Tags) + @($Tag | Where-Object { $_ })
    if ($ForEach) {
        foreach ($data in $ForEach) {
            $title = $Name
            if ($data -is [hashtable]) { foreach ($k in $data.Keys) { $title = $title.Replace("<$k>", "$($data[$k])") } }
            else { $title = $title.Replace('<_>', "$data") }
            $block.Children.Add(@{ Kind = 'It'; Name = $title; Test = $Test; Data = $data; HasData = $true; Skip = [bool]$Skip; Tags = $tags })
        }
    } else {
        $block.Children.Add(@{ Kind = 'It'; Name = $Name; Test = $Test; Data = $null; HasData = $false; Skip = [bool]$Skip; Tags = $tags })
    }
}

function BeforeAll([Parameter(Mandatory, Position = 0)][scriptblock]$Scriptblock) { Add-AsrPesterSetup BeforeAll $Scriptblock }
function AfterAll([Parameter(Mandatory, Position = 0)][scriptblock]$Scriptblock) { Add-AsrPesterSetup AfterAll $Scriptblock }
function BeforeEach([Parameter(Mandatory, Position = 0)][scriptblock]$Scriptblock) { Add-AsrPesterSetup BeforeEach $Scriptblock }
function AfterEach([Parameter(Mandatory, Position = 0)][scriptblock]$Scriptblock) { Add-AsrPesterSetup AfterEach $Scriptblock }

function Add-AsrPesterSetup([string]$Kind, [scriptblock]$Scriptblock) {
    $block = $global:AsrPester.Current
    if (-not $block) { throw "$Kind must be inside Describe or Context." }
    $block[$Kind] = @($block[$Kind]) + $Scriptblock
}

function Add-AsrPesterDiscovered($Block) {
    foreach ($child in $Block.Children) {
        if ($child.Kind -eq 'Block') { Add-AsrPesterDiscovered $child.Block }
        else { $global:AsrPester.Results.Add([pscustomobject]@{ Name = "$($Block.Path) > $($child.Name)"; Result = 'Discovered'; Message = $null; Tags = [string[]]@($child.Tags) }) }
    }
}

function Test-AsrPesterIncluded($Child) {
    foreach ($t in $Child.Tags) { if ($global:AsrPester.ExcludeTag -contains $t) { return $false } }
    $true
}

function Test-AsrPesterBlockHasTests($Block) {
    <# Whether any It in the block (or below) is not excluded: a block without one runs no setup, as in Pester. #>
    foreach ($child in $Block.Children) {
        if ($child.Kind -eq 'Block') { if (Test-AsrPesterBlockHasTests $child.Block) { return $true } }
        elseif (Test-AsrPesterIncluded $child) { return $true }
    }
    $false
}

function Add-AsrPesterResult($Block, $Child, [string]$Result, [string]$Message, [double]$Seconds) {
    $global:AsrPester.Results.Add([pscustomobject]@{ Name = "$($Block.Path) > $($Child.Name)"; Result = $Result; Message = $Message; Seconds = $Seconds })
}

function Format-AsrPesterError($ErrorRecord) {
    $pos = if ($ErrorRecord.InvocationInfo) { $ErrorRecord.InvocationInfo.PositionMessage } else { '' }
    "$($ErrorRecord.Exception.Message) [$($ErrorRecord.FullyQualifiedErrorId)]`n$pos`n$($ErrorRecord.ScriptStackTrace)"
}

function Invoke-AsrPesterBlock($Block) {
    if (-not (Test-AsrPesterBlockHasTests $Block)) { return }
    # Runs in its own child scope: what BeforeAll defines is visible to the block's Its and nested blocks.
    & {
        param($AsrPesterBlock)
        $setupError = $null
        if (-not $AsrPesterBlock.Skip) {
            try { foreach ($AsrPesterSb in $AsrPesterBlock.BeforeAll) { . $AsrPesterSb } }
            catch { $setupError = "BeforeAll failed: $(Format-AsrPesterError $_)" }
        }
        foreach ($AsrPesterChild in $AsrPesterBlock.Children) {
            if ($AsrPesterChild.Kind -eq 'Block') {
                if ($setupError) { Set-AsrPesterFailed $AsrPesterChild.Block $setupError } else { Invoke-AsrPesterBlock $AsrPesterChild.Block }
                continue
            }
            if (-not (Test-AsrPesterIncluded $AsrPesterChild)) { continue }
            if ($AsrPesterBlock.Skip -or $AsrPesterChild.Skip) { Add-AsrPesterResult $AsrPesterBlock $AsrPesterChild 'Skipped' $null 0; continue }
            if ($setupError) { Add-AsrPesterResult $AsrPesterBlock $AsrPesterChild 'Failed' $setupError 0; continue }
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $failure = & {
                param($AsrPesterBlock, $AsrPesterChild)
                $_ = $AsrPesterChild.Data
                if ($AsrPesterChild.Data -is [hashtable]) { foreach ($k in $AsrPesterChild.Data.Keys) { $ExecutionContext.SessionState.PSVariable.Set($k, $AsrPesterChild.Data[$k]) } }
                $message = $null
                try {
                    foreach ($b in (Get-AsrPesterChain $AsrPesterBlock 'BeforeEach')) { . $b }
                    $null = . $AsrPesterChild.Test
                } catch { $message = Format-AsrPesterError $_ }
                try { foreach ($b in (Get-AsrPesterChain $AsrPesterBlock 'AfterEach')) { . $b } }
                catch { if (-not $message) { $message = "AfterEach failed: $(Format-AsrPesterError $_)" } }
                $message
            } $AsrPesterBlock $AsrPesterChild
            $watch.Stop()
            if ($failure) { Add-AsrPesterResult $AsrPesterBlock $AsrPesterChild 'Failed' ([string]$failure) $watch.Elapsed.TotalSeconds }
            else { Add-AsrPesterResult $AsrPesterBlock $AsrPesterChild 'Passed' $null $watch.Elapsed.TotalSeconds }
        }
        if (-not $AsrPesterBlock.Skip) {
            try { foreach ($AsrPesterSb in $AsrPesterBlock.AfterAll) { . $AsrPesterSb } }
            catch { $global:AsrPester.Results.Add([pscustomobject]@{ Name = "$($AsrPesterBlock.Path) > AfterAll"; Result = 'Failed'; Message = (Format-AsrPesterError $_) }) }
        }
    } $Block
}

function Set-AsrPesterFailed($Block, [string]$Message) {
    foreach ($child in $Block.Children) {
        if ($child.Kind -eq 'Block') { Set-AsrPesterFailed $child.Block $Message }
        elseif (Test-AsrPesterIncluded $child) { Add-AsrPesterResult $Block $child 'Failed' $Message 0 }
    }
}

function Get-AsrPesterChain($Block, [string]$Kind) {
    # Outer blocks' BeforeEach run first; AfterEach run innermost first.
    $chain = [System.Collections.Generic.List[object]]::new()
    for ($b = $Block; $b; $b = $b.Parent) { $chain.Insert(0, $b) }
    if ($Kind -eq 'AfterEach') { $chain.Reverse() }
    foreach ($b in $chain) { foreach ($sb in $b[$Kind]) { $sb } }
}

function Should {
    [CmdletBinding()]
    param(
        [Parameter(ValueFromPipeline)] $ActualValue,
        [Parameter(Position = 0)] $ExpectedValue,
        [switch]$Not, [switch]$Be, [switch]$BeExactly, [switch]$BeTrue, [switch]$BeFalse, [switch]$BeNullOrEmpty,
        [switch]$BeGreaterThan, [switch]$BeLessThan, [switch]$BeGreaterOrEqual, [switch]$BeLessOrEqual,
        [switch]$Match, [switch]$Contain, [switch]$HaveCount, [switch]$BeOfType, [switch]$Throw, [switch]$Exist,
        [string]$ErrorId, [string]$ExpectedMessage, [Type]$ExceptionType, [string]$Because, [switch]$PassThru
    )
    begin { $values = [System.Collections.Generic.List[object]]::new() }
    process { if ($PSBoundParameters.ContainsKey('ActualValue')) { $values.Add($ActualValue) } }
    end {
        $actual = if ($values.Count -eq 1) { $values[0] } elseif ($values.Count -eq 0) { $null } else { , $values.ToArray() }
        $why = if ($Because) { " because $Because" } else { '' }
        function Show($v) { if ($null -eq $v) { '$null' } elseif ($v -is [string]) { "'$v'" } elseif ($v -is [Collections.IEnumerable]) { '@(' + (@($v | ForEach-Object { Show $_ }) -join ', ') + ')' } else { "$v" } }

        if ($Throw) {
            $record = $null
            try { $null = & $actual } catch { $record = $_ }
            $ok = $null -ne $record
            $detail = 'no exception was thrown'
            if ($ok -and $ErrorId -and $record.FullyQualifiedErrorId -notlike "*$ErrorId*") { $ok = $false; $detail = "the error id was '$($record.FullyQualifiedErrorId)': $($record.Exception.Message)" }
            if ($ok -and $ExpectedMessage -and $record.Exception.Message -notlike "*$ExpectedMessage*") { $ok = $false; $detail = "the message was '$($record.Exception.Message)'" }
            if ($ok -and $ExceptionType -and $record.Exception -isnot $ExceptionType) { $ok = $false; $detail = "the exception was $($record.Exception.GetType().FullName)" }
            if ($Not) {
                if ($record) { throw "Expected no exception$why, but got: $($record.Exception.Message) [$($record.FullyQualifiedErrorId)]" }
                return
            }
            if (-not $ok) { throw "Expected an exception$(if ($ErrorId) { " with error id '$ErrorId'" })$(if ($ExpectedMessage) { " with message like '$ExpectedMessage'" })$why, but $detail." }
            if ($PassThru) { $record }
            return
        }

        $result = $null; $description = $null
        if ($Be) {
            if ($actual -is [Collections.IEnumerable] -and $actual -isnot [string] -and $ExpectedValue -is [Collections.IEnumerable] -and $ExpectedValue -isnot [string]) {
                $a = @($actual); $e = @($ExpectedValue)
                $result = $a.Count -eq $e.Count
                for ($i = 0; $result -and $i -lt $a.Count; $i++) { $result = $a[$i] -eq $e[$i] }
            } elseif ($null -eq $ExpectedValue) { $result = $null -eq $actual }
            else { $result = $ExpectedValue -eq $actual }
            $description = "to be $(Show $ExpectedValue)"
        }
        elseif ($BeExactly) { $result = $ExpectedValue -ceq $actual; $description = "to be exactly $(Show $ExpectedValue)" }
        elseif ($BeTrue) { $result = [bool]$actual -eq $true; $description = 'to be $true' }
        elseif ($BeFalse) { $result = [bool]$actual -eq $false; $description = 'to be $false' }
        elseif ($BeNullOrEmpty) { $result = $null -eq $actual -or ($actual -is [string] -and $actual -eq '') -or ($actual -is [Collections.ICollection] -and $actual.Count -eq 0); $description = 'to be null or empty' }
        elseif ($BeGreaterThan) { $result = $actual -gt $ExpectedValue; $description = "to be greater than $(Show $ExpectedValue)" }
        elseif ($BeLessThan) { $result = $actual -lt $ExpectedValue; $description = "to be less than $(Show $ExpectedValue)" }
        elseif ($BeGreaterOrEqual) { $result = $actual -ge $ExpectedValue; $description = "to be greater than or equal to $(Show $ExpectedValue)" }
        elseif ($BeLessOrEqual) { $result = $actual -le $ExpectedValue; $description = "to be less than or equal to $(Show $ExpectedValue)" }
        elseif ($Match) { $result = [string]$actual -match $ExpectedValue; $description = "to match $(Show $ExpectedValue)" }
        elseif ($Contain) { $result = @($actual) -contains $ExpectedValue; $description = "to contain $(Show $ExpectedValue)" }
        elseif ($HaveCount) { $result = @($actual).Count -eq $ExpectedValue; $description = "to have $ExpectedValue item(s)"; $actual = @($actual).Count }
        elseif ($BeOfType) { $type = if ($ExpectedValue -is [type]) { $ExpectedValue } else { [type]$ExpectedValue }; $result = $actual -is $type; $description = "to be of type $type" }
        elseif ($Exist) { $result = [IO.File]::Exists($actual) -or [IO.Directory]::Exists($actual); $description = 'to exist' }
        else { throw 'Should: no assertion operator given (e.g. -Be, -BeTrue, -Throw).' }

        if ($Not) { $result = -not $result; $description = "not $description" }
        if (-not $result) { throw "Expected $(Show $actual) $description$why." }
    }
}
