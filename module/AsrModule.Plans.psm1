# Recovery plans as PowerShell scripts: a small DSL that builds a plan definition. A plan file is an
# ordinary .ps1 that calls AsrRecoveryPlan once; Start-AsrRecoveryPlan runs it. See docs/plans.md.
# Only Core cmdlets and .NET calls: plans run wherever the module runs.

$script:AsrPlan = $null
$script:AsrGroup = $null
$FailoverTypes = 'Test', 'TestCleanup', 'Planned', 'Unplanned', 'Commit', 'Reprotect', 'Failback'

function AsrRecoveryPlan {
    <#
    .SYNOPSIS
        Declares a recovery plan: ordered groups of machines, script steps and pauses.
    .EXAMPLE
        AsrRecoveryPlan 'shop' { AsrGroup 1 -Items db01 { AsrStep 'Stop app tier' -Before { param($ctx) ... } } }
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string]$Name, [Parameter(Mandatory, Position = 1)][scriptblock]$Definition)
    if ($script:AsrPlan) { throw 'AsrRecoveryPlan cannot be nested.' }
    $script:AsrPlan = [AsrModule.Plans.PlanDefinition]::new($Name)
    try { $null = & $Definition; $script:AsrPlan }
    finally { $script:AsrPlan = $null; $script:AsrGroup = $null }
}

function AsrGroup {
    <#
    .SYNOPSIS
        A group of machines that fail over together (in parallel); groups run in order.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)][int]$Number,
        [Parameter(Mandatory)][string[]]$Items,
        [Parameter(Position = 1)][scriptblock]$Steps,
        [ValidateSet('Test', 'TestCleanup', 'Planned', 'Unplanned', 'Commit', 'Reprotect', 'Failback')][string[]]$FailoverType,
        [ValidateSet('PrimaryToRecovery', 'RecoveryToPrimary')][string[]]$Direction
    )
    if (-not $script:AsrPlan) { throw 'AsrGroup must be inside AsrRecoveryPlan.' }
    if ($script:AsrGroup) { throw 'AsrGroup cannot be nested.' }
    $script:AsrGroup = $script:AsrPlan.AddGroup($Number, $Items, $FailoverType, $Direction)
    try { if ($Steps) { $null = & $Steps } }
    finally { $script:AsrGroup = $null }
}

function AsrStep {
    <#
    .SYNOPSIS
        A script step: -Before/-After its group (inside AsrGroup), or at its place in the plan (outside).
        Each block receives the context ($ctx): RecoveryPlanName, FailoverType, FailoverDirection, GroupId, VmMap.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)][string]$Name,
        [scriptblock]$Before,
        [scriptblock]$After,
        [ValidateSet('Test', 'TestCleanup', 'Planned', 'Unplanned', 'Commit', 'Reprotect', 'Failback')][string[]]$FailoverType,
        [ValidateSet('PrimaryToRecovery', 'RecoveryToPrimary')][string[]]$Direction,
        [switch]$ContinueOnError,
        [ValidateRange(1, 604800)][int]$TimeoutSeconds = 3600
    )
    if (-not $script:AsrPlan) { throw 'AsrStep must be inside AsrRecoveryPlan.' }
    $null = $script:AsrPlan.AddStep($script:AsrGroup, $Name, $Before, $After, $FailoverType, $Direction, $ContinueOnError.IsPresent, $TimeoutSeconds)
}

function AsrPause {
    <#
    .SYNOPSIS
        A manual action: the plan's job is suspended here until someone runs Resume-AsrJob (from any process).
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)][string]$Message,
        [ValidateSet('Test', 'TestCleanup', 'Planned', 'Unplanned', 'Commit', 'Reprotect', 'Failback')][string[]]$FailoverType,
        [ValidateSet('PrimaryToRecovery', 'RecoveryToPrimary')][string[]]$Direction
    )
    if (-not $script:AsrPlan) { throw 'AsrPause must be inside AsrRecoveryPlan.' }
    if ($script:AsrGroup) { throw 'AsrPause goes between groups, not inside one.' }
    $null = $script:AsrPlan.AddPause($Message, $FailoverType, $Direction)
}

function AsrBootCheck {
    <#
    .SYNOPSIS
        How machines are booted when a Test run boots its drills (Start-AsrRecoveryPlan -FailoverType Test -Boot):
        the readiness signal, the machine's hardware, and a check that gets the console log and forwarded ports.
        Inside AsrGroup without -Items it applies to the group's machines. See Test-AsrTestFailover -Boot.
    .EXAMPLE
        AsrBootCheck -Items web01, web02 -ReadyPattern 'login:' -ForwardPort 80 -Check { param($m) (Invoke-WebRequest "http://127.0.0.1:$($m.HostPort(80))/").StatusCode -eq 200 }
    #>
    [CmdletBinding()]
    param(
        [string[]]$Items,
        [string]$ReadyPattern,
        [ValidateRange(1, 65535)][int]$ReadyPort,
        [ValidateRange(1, 65535)][int[]]$ForwardPort = @(),
        [ValidateRange(5, 7200)][int]$BootTimeoutSeconds = 300,
        [ValidateRange(64, 65536)][int]$MemoryMiB = 1024,
        [ValidateRange(1, 64)][int]$Cpus = 1,
        [ValidateSet('Virtio', 'Ide', 'Sata')][string]$DiskBus = 'Virtio',
        [ValidateSet('virtio-net-pci', 'e1000', 'rtl8139')][string]$NicModel = 'virtio-net-pci',
        [scriptblock]$Check
    )
    if (-not $script:AsrPlan) { throw 'AsrBootCheck must be inside AsrRecoveryPlan.' }
    if (-not $Items) {
        if (-not $script:AsrGroup) { throw 'AsrBootCheck outside a group needs -Items.' }
        $Items = @($script:AsrGroup.Items)
    }
    $port = if ($PSBoundParameters.ContainsKey('ReadyPort')) { [Nullable[int]]$ReadyPort } else { [Nullable[int]]$null }
    $null = $script:AsrPlan.AddBoot([string[]]$Items, $ReadyPattern, $port, [int[]]$ForwardPort, $BootTimeoutSeconds, $MemoryMiB, $Cpus, $DiskBus, $NicModel, $Check)
}

Export-ModuleMember -Function AsrRecoveryPlan, AsrGroup, AsrStep, AsrPause, AsrBootCheck
