#!/usr/bin/env bash
# The engine's flash footprint as README "Edge footprint" reports it: the C static
# library (runtime/firmware: C ABI + engine, no_std, panic = "abort", LTO) built at
# opt-level "s" and 3, and the code and read-only data of its own object (core, postcard
# and libm functions it uses are inlined or merged into that object by LTO;
# compiler_builtins is left out: the firmware's toolchain provides those). Host target
# unless TARGET is set.
set -euo pipefail
cd "$(dirname "$0")/.."
target_args=()
[ -n "${TARGET:-}" ] && target_args=(--target "$TARGET")
printf '%-6s %10s %10s\n' opt code rodata
for opt in s 3; do
    dir="target/footprint-$opt"
    cargo build -q --manifest-path runtime/firmware/Cargo.toml --release --lib \
        "${target_args[@]}" --target-dir "$dir" \
        --config "profile.release.opt-level=$( [ "$opt" = s ] && echo '"s"' || echo 3 )"
    lib=$(find "$dir" -name libfmnist.a -path '*release*' | head -1)
    work=$(mktemp -d)
    (cd "$work" && ar x "$OLDPWD/$lib")
    object=$(ls "$work"/fmnist-*.o)
    size -A "$object" | awk -v opt="$opt" '
        $1 ~ /^\.text/ { code += $2 }
        $1 ~ /^\.rodata/ { rodata += $2 }
        END { printf "%-6s %10d %10d\n", opt, code, rodata }'
    rm -rf "$work"
done
