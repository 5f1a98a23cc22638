# Sourced by the bench scripts (needs REPO): the PowerShell pinned in .config/dotnet-tools.json.
#
#   pinned_pwsh MODULE_ROOT    sets PWSH=(env ... dotnet <PSHOME>/pwsh.dll -NoProfile -NonInteractive); append
#                              `-File step.ps1 args...`. Each use is a fresh pwsh process whose `Import-Module AsrModule`
#                              loads MODULE_ROOT/AsrModule.
#
# The tool is restored once and its PSHOME looked up through `dotnet pwsh` (which resolves the tool manifest from the
# working directory, so it runs in REPO); the steps then run `dotnet <PSHOME>/pwsh.dll` directly: no tool lookup in a
# timed process, any working directory. PSModulePath is MODULE_ROOT followed by pwsh's own default (user, shared,
# PSHOME): pwsh puts those defaults in front of a PSModulePath that lacks them, where an AsrModule installed in the
# user's module folder would win over the build under test. NO_COLOR: plain text (no ANSI table headers) in the logs.
pinned_pwsh() {
    local module_root=$1 lines
    lines=$(cd "$REPO" && dotnet tool restore > /dev/null &&
        env -u PSModulePath dotnet pwsh -NoProfile -NonInteractive -Command '$PSHOME; $env:PSModulePath') || return 1
    local pshome=${lines%%$'\n'*} default=${lines#*$'\n'}
    [[ -f "$pshome/pwsh.dll" && -n "$default" ]] || return 1
    PWSH=(env "PSModulePath=$module_root:$default" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
        POWERSHELL_TELEMETRY_OPTOUT=1 POWERSHELL_UPDATECHECK=Off NO_COLOR=1
        dotnet "$pshome/pwsh.dll" -NoProfile -NonInteractive)
}

#   build_module_snapshot BIN  publishes the module (Release, ReadyToRun, linux-x64) into BIN/out/AsrModule, so concurrent
#                              builds of out/AsrModule in the repository cannot change it mid-run; skipped with
#                              BENCH_NO_BUILD=1 (reuse the snapshot). Returns 1 when no module came out.
build_module_snapshot() {
    local bin=$1
    [[ "${BENCH_NO_BUILD:-0}" == 1 ]] && return 0
    rm -rf "$bin"
    mkdir -p "$bin/out"
    echo "building the module (Release) into $bin ..."
    if ! dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true "$REPO/src/AsrModule" -p:ModuleOutDir="$bin/out/AsrModule/" -nologo > "$bin/build.log" 2>&1; then
        # A failed help generation (HelpGen, MSB3073) leaves the packaged module usable; anything else does not.
        if grep -E ' error ' "$bin/build.log" | grep -vE 'HELPGEN|MSB3073' | head -5 | grep . ; then
            echo "build failed (see $bin/build.log)" >&2; return 1
        fi
        echo "  (help generation failed; the module itself built)"
    fi
    [[ -f "$bin/out/AsrModule/Dependencies/AsrModule.dll" && -f "$bin/out/AsrModule/agent/AsrModule.Agent.dll" ]] || { echo "no module in $bin/out (see $bin/build.log)" >&2; return 1; }
}
