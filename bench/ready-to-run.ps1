<#
.SYNOPSIS
    One step of bench/ready-to-run.sh, timed by hyperfine as a whole pwsh process (start-up included).
.DESCRIPTION
      setup  : a vault (encrypted, zstd-1) and one item protecting -Disk (untimed)
      list   : Import-Module; Connect-AsrVault; Get-AsrProtectedItem -Name <Item>
      delta  : Import-Module; Connect-AsrVault; Invoke-AsrReplication -Name <Item> (one cycle; the cmdlet waits for its job)
#>
param(
    [Parameter(Mandatory)][ValidateSet('setup', 'list', 'delta')][string]$Step,
    [Parameter(Mandatory)][string]$Vault,
    [string]$Disk,
    [string]$Item = 'r2r'
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
$key = 'bench-passphrase-0123456789'
switch ($Step) {
    'setup' {
        New-AsrVault -Path $Vault -EncryptionKey $key | Connect-AsrVault
        [void](New-AsrPolicy -Name default)
        $job = Enable-AsrReplication -Name $Item -Disk $Disk -Policy default
    }
    'list' { Connect-AsrVault -Path $Vault -EncryptionKey $key; [void](Get-AsrProtectedItem -Name $Item) }
    'delta' { Connect-AsrVault -Path $Vault -EncryptionKey $key; $job = Invoke-AsrReplication -Name $Item }
}
if ($job -and "$(@($job)[-1].State)" -ne 'Succeeded') { throw "job $(@($job)[-1].State): $(@($job)[-1].Errors)" }
