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

Export-ModuleMember -Function AsrRecoveryPlan, AsrGroup, AsrStep, AsrPause
