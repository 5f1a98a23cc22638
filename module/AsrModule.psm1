# Loads the module's binary part into its own AssemblyLoadContext (AsrModule.Loader): the cmdlets, the
# engine and their dependencies live in Dependencies/ and never collide with assemblies other modules
# (Az.Accounts' Azure.Core, for one) have loaded into the session. See docs/design.md, "Isolation".
$loader = [System.Reflection.Assembly]::LoadFrom([System.IO.Path]::Combine($PSScriptRoot, 'AsrModule.Loader.dll'))
$cmdlets = $loader.GetType('AsrModule.Loader.ModuleLoadContext')::LoadModule([System.IO.Path]::Combine($PSScriptRoot, 'Dependencies'))
Import-Module -Assembly $cmdlets -DisableNameChecking
Export-ModuleMember -Cmdlet * -Function *
