#!/usr/bin/env bash
# The engine's footprint as docs/edge.md ("Microcontrollers") reports it, and the firmware
# budget checked (exit 1 when over it).
#
# 1. x86-64 (the host): the C static library (runtime/firmware: C ABI + engine, no_std,
#    panic = "abort", LTO) built at opt-level "s" and 3, and the code and read-only data
#    of its own object (core, postcard and libm functions it uses are inlined or merged
#    into that object by LTO; compiler_builtins is left out: the firmware's toolchain
#    provides those).
# 2. Cortex-M (thumbv7em-none-eabihf, Thumb-2, the DSP kernels): `footprint`, the
#    smallest firmware around the engine (runtime/firmware/cortex-m: cortex-m-rt start-up,
#    the blob in flash, a static arena, a classify loop; no semihosting), linked for
#    `edge.q8` and `cnn.q8` at opt-level "s" and 3, measured with arm-none-eabi-size:
#    flash = vector table + code + read-only data (the blob included) + initialised data;
#    RAM = the engine's arena and the stack `Plan::new` and `classify` used (painted and
#    read back by the `classify` firmware on QEMU's Cortex-M4, same opt-level) and the
#    image's other statics. Budget: flash under 128 KiB, RAM under 64 KiB.
#
# Needs (for 2): rustup target thumbv7em-none-eabihf, binutils-arm-none-eabi (with
# gcc-arm-none-eabi), qemu-system-arm; scripts/test.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
optlevel() { [ "$1" = s ] && echo '"s"' || echo 3; }

echo "x86-64: libfmnist.a's own object"
printf '%-6s %10s %10s\n' opt code rodata
for opt in s 3; do
    dir="target/footprint-$opt"
    cargo build -q --manifest-path runtime/firmware/Cargo.toml --release --lib \
        --target-dir "$dir" --config "profile.release.opt-level=$(optlevel $opt)"
    lib=$(find "$dir" -name libfmnist.a -path '*release*' | head -1)
    work=$(mktemp -d)
    (cd "$work" && ar x "$root/$lib")
    object=$(ls "$work"/fmnist-*.o)
    size -A "$object" | awk -v opt="$opt" '
        $1 ~ /^\.text/ { code += $2 }
        $1 ~ /^\.rodata/ { rodata += $2 }
        END { printf "%-6s %10d %10d\n", opt, code, rodata }'
    rm -rf "$work"
done

echo
echo "Cortex-M4F/M7 (thumbv7em-none-eabihf): the linked footprint firmware"
images=$(mktemp)
trap 'rm -f "$images"' EXIT
# One image of zeros is enough to measure the arena and the stack.
head -c 784 /dev/zero >"$images"
printf '%-6s %-6s %8s %8s %8s %9s %8s %8s %8s %9s\n' \
    opt model code rodata blob flash arena stack statics RAM
over=0
for opt in s 3; do
    dir="$root/target/footprint-arm-$opt"
    for model in edge cnn; do
        features=()
        [ $model = cnn ] && features=(--features cnn)
        (cd runtime/firmware/cortex-m && cargo build -q --release --bins "${features[@]}" \
            --target-dir "$dir" --config "profile.release.opt-level=$(optlevel $opt)")
        elf=$dir/thumbv7em-none-eabihf/release/footprint
        blob=$(stat -c %s models/$model.q8)
        # The engine's arena and stack for this blob, from the classify firmware.
        out=$(qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
            -semihosting-config "enable=on,target=native,arg=classify,arg=logits,arg=$root/models/$model.q8,arg=$images,arg=1" \
            -kernel "$dir/thumbv7em-none-eabihf/release/classify")
        arena=$(awk '$1 == "arena" { print $2 }' <<<"$out")
        stack=$(awk '$1 == "stack" { print $2 }' <<<"$out")
        static_arena=$((16#$(arm-none-eabi-nm -S "$elf" | awk '$4 ~ /ARENA/ { print $2 }')))
        if [ "$arena" -gt "$static_arena" ]; then
            echo "footprint.rs: $model needs an arena of $arena bytes, the static one has $static_arena" >&2
            exit 1
        fi
        arm-none-eabi-size -A "$elf" | awk -v opt=$opt -v model=$model -v blob="$blob" \
            -v arena="$arena" -v stack="$stack" -v static_arena="$static_arena" '
            $1 == ".vector_table" { vectors = $2 }
            $1 == ".text" { code = $2 }
            $1 == ".rodata" { rodata = $2 }
            $1 == ".data" { data = $2 }
            $1 == ".bss" || $1 == ".uninit" { bss += $2 }
            END {
                flash = vectors + code + rodata + data
                statics = data + bss - static_arena
                ram = arena + stack + statics
                printf "%-6s %-6s %8d %8d %8d %9d %8d %8d %8d %9d\n", opt, model, code + vectors, rodata - blob, blob, flash, arena, stack, statics, ram
                if (flash > 131072 || ram > 65536) exit 1
            }' || over=1
    done
done
if [ $over = 1 ]; then
    echo "over the firmware budget (flash 128 KiB, RAM 64 KiB)" >&2
    exit 1
fi
echo "within the budget: flash under 128 KiB, RAM under 64 KiB"
