# Helpers to generate and change raw disk images for demos and tests.
# Plain pwsh and .NET calls (no other module needed).

function New-AsrSampleDisk {
    <# Writes a raw disk image: the PRODUCT.md mix of 1 MiB regions (random, text, zero, zero). #>
    param([Parameter(Mandatory)][string]$Path, [Parameter(Mandatory)][long]$SizeBytes, [int]$Seed = 1)
    # Relative and PSDrive paths are PowerShell's (the current location), not the process's working directory.
    $Path = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    [void][IO.Directory]::CreateDirectory([IO.Path]::GetDirectoryName($Path))
    $rng = [Random]::new($Seed)
    $region = 1MB
    $random = [byte[]]::new($region)
    $words = 'replication vault recovery point failover disk block extent cycle consistent'.Split(' ')
    $text = [Text.StringBuilder]::new($region + 64)
    while ($text.Length -lt $region) { [void]$text.Append($words[$rng.Next($words.Length)]).Append(' ') }
    $textBytes = [Text.Encoding]::ASCII.GetBytes($text.ToString(0, $region))
    $fs = [IO.FileStream]::new($Path, [IO.FileMode]::Create, [IO.FileAccess]::Write)
    try {
        $fs.SetLength($SizeBytes)
        for ($off = 0L; $off -lt $SizeBytes; $off += $region) {
            $len = [int][Math]::Min($region, $SizeBytes - $off)
            switch (($off / $region) % 4) {
                0 { $rng.NextBytes($random); $fs.Position = $off; $fs.Write($random, 0, $len) }
                1 { $textBytes[$rng.Next($region)] = 33; $fs.Position = $off; $fs.Write($textBytes, 0, $len) }
                default { }   # zeros: left sparse
            }
        }
    } finally { $fs.Dispose() }
    [IO.FileInfo]::new($Path)
}

function Write-AsrSampleChange {
    <# Overwrites a fraction of the 4 KiB blocks at random places; returns the bytes written. #>
    param([Parameter(Mandatory)][string]$Path, [double]$Fraction = 0.01, [int]$Seed = 2)
    $Path = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    $rng = [Random]::new($Seed)
    $block = [byte[]]::new(4096)
    $fs = [IO.FileStream]::new($Path, [IO.FileMode]::Open, [IO.FileAccess]::ReadWrite)
    try {
        $blocks = [long][Math]::Floor($fs.Length / 4096)
        $count = [long][Math]::Max(1, [Math]::Floor($blocks * $Fraction))
        for ($i = 0; $i -lt $count; $i++) {
            $rng.NextBytes($block)
            $fs.Position = $rng.NextInt64($blocks) * 4096
            $fs.Write($block, 0, 4096)
        }
    } finally { $fs.Dispose() }
    $count * 4096
}

function Get-AsrSampleHash {
    <# SHA-256 of a file, as hex (what (Get-FileHash $Path).Hash gives, without the cmdlet's object). #>
    param([Parameter(Mandatory, ValueFromPipeline)][string]$Path)
    process {
        $fs = [IO.File]::OpenRead($ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path))
        try { [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($fs)) } finally { $fs.Dispose() }
    }
}
