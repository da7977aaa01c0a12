#!/usr/bin/env bash
# Instructions per image of `Plan::classify` on emulated Cortex-M cores, beside CMSIS-NN
# running the same model's layers (benches/README.md, "Cortex-M").
#
#   benches/cortex-m/run.sh [IMAGES]        # default 20 test images
#
# Our engine: the firmware in runtime/firmware/cortex-m (`classify bench`), built with
# the DSP kernels and with the portable ones (FMNIST_KERNELS=portable), each at
# opt-level 3 and "s" (LTO, one codegen unit), run on QEMU's mps2-an386 (Cortex-M4F) and
# mps2-an500 (Cortex-M7) with -icount shift=0. CMSIS-NN: benches/cortex-m/cmsis.c over
# the same blob (runtime/examples/cmsis_model.rs), built with arm-none-eabi-gcc -O3 (and
# -Os) for each core. CMSIS-NN and CMSIS_6 come from checkouts or bare clones named by
# CMSIS_NN and CMSIS_6 (the public ARM-software repositories); the commits measured are
# pinned below and exported from a clone with `git archive`. Without them, only our
# engine is measured.
#
# Needs: rustup target thumbv7em-none-eabihf, qemu-system-arm, gcc-arm-none-eabi,
# libnewlib-arm-none-eabi, and the Debian dataset (dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
count=${1:-20}
data=${FMNIST_DATA:-/usr/share/datasets/fashion-mnist}
CMSIS_NN_COMMIT=99f736a63036613032f9b70de36b493bcd7802d4 # 2026-07-15
CMSIS_6_COMMIT=7f62ddc8ab8e9af22039912b8f9f46a9290f49ba  # 2026-06-30
work=$root/target/cortex-m-bench
mkdir -p "$work"

images=$work/images.bin
# The first COUNT test images, 784 bytes each (head closes the pipe early: no pipefail).
(set +o pipefail; gzip -dc "$data/t10k-images-idx3-ubyte.gz" | tail -c +17 | head -c $((784 * count)) >"$images")

qemu() { # BOARD ELF ARGS...: run under QEMU with semihosting, one instruction per ns
    local board=$1 elf=$2
    shift 2
    local cpu=cortex-m4
    [ "$board" = mps2-an500 ] && cpu=cortex-m7
    local args=""
    for a in "$@"; do args="$args,arg=$a"; done
    timeout 600 qemu-system-arm -machine "$board" -cpu "$cpu" -nographic -icount shift=0 \
        -semihosting-config "enable=on,target=native$args" -kernel "$elf"
}

# The instructions of the first image (every image takes the same: no branch depends on
# the pixels' values), checking that all agree.
# The class of each image (the first largest logit), one per line.
classes() {
    awk '$1 == "logits" { best = 3; for (i = 4; i <= 12; i++) if ($i > $best) best = i; print best - 3 }'
}

per_image() {
    awk '$1 == "logits" { n[$NF]++ } END { for (k in n) print k, n[k] }' | sort -k2 -n | tail -1 | cut -d' ' -f1
}

printf '%-34s %-11s %14s %9s\n' path board instructions per_MAC
report() { # NAME BOARD OUTPUT: the instructions per image and per multiply-accumulate
    local instructions macs
    instructions=$(per_image <<<"$3")
    macs=$(awk '$1 == "macs" { print $2 }' <<<"$3")
    printf '%-34s %-11s %14s %9s\n' "$1" "$2" "$instructions" \
        "$(awk -v i="$instructions" -v m="$macs" 'BEGIN { printf "%.2f", i / m }')"
}

for kernels in dsp portable; do
    for opt in 3 s; do
        dir=$work/rust-$kernels-$opt
        (cd runtime/firmware/cortex-m && FMNIST_KERNELS=$kernels cargo build -q --release --bin classify \
            --target-dir "$dir" --config "profile.release.opt-level=$([ $opt = s ] && echo '"s"' || echo 3)")
        elf=$dir/thumbv7em-none-eabihf/release/classify
        for board in mps2-an386 mps2-an500; do
            out=$(qemu $board "$elf" classify bench - "$images" "$count")
            grep -q "^kernels $kernels" <<<"$out" || { echo "$out" >&2; exit 1; }
            [ "$kernels$opt$board" = dsp3mps2-an386 ] && reference=$(classes <<<"$out")
            report "fmnist $kernels opt-level=$opt" $board "$out"
        done
    done
done

if [ -n "${CMSIS_NN:-}" ] && [ -n "${CMSIS_6:-}" ]; then
    src=$work/cmsis-src
    export_tree() { # REPO COMMIT DEST
        rm -rf "$3" && mkdir -p "$3"
        if git -C "$1" rev-parse --git-dir >/dev/null 2>&1; then
            git -C "$1" archive "$2" | tar -x -C "$3"
        else
            cp -r "$1"/. "$3"
        fi
    }
    export_tree "$CMSIS_NN" $CMSIS_NN_COMMIT "$src/nn"
    export_tree "$CMSIS_6" $CMSIS_6_COMMIT "$src/core"
    cargo run -q --release -p fmnist-runtime --example cmsis_model -- models/edge.q8 >"$work/model.h"
    # The integer kernels (the float ones need the float build of the headers).
    sources=$(ls "$src"/nn/Source/{ConvolutionFunctions,PoolingFunctions,FullyConnectedFunctions,NNSupportFunctions}/*.c | grep -v -E '_f(16|32)\.c$')
    for cpu in cortex-m4 cortex-m7; do
        fpu=fpv4-sp-d16
        board=mps2-an386
        [ $cpu = cortex-m7 ] && fpu=fpv5-d16 && board=mps2-an500
        for opt in O3 Os; do
            elf=$work/cmsis-$cpu-$opt.elf
            arm-none-eabi-gcc -std=c11 -$opt -mcpu=$cpu -mthumb -mfpu=$fpu -mfloat-abi=hard \
                --specs=rdimon.specs -ffunction-sections -fdata-sections -Wl,--gc-sections \
                -Wl,--no-warn-execstack -T runtime/firmware/cortex-m/c/mps2.ld \
                -I "$src/nn/Include" -I "$src/core/CMSIS/Core/Include" -I "$work" \
                benches/cortex-m/cmsis.c runtime/firmware/cortex-m/c/startup.c $sources -o "$elf"
            out=$(qemu $board "$elf" cmsis "$images" "$count")
            report "CMSIS-NN gcc -$opt" $board "$out"
            agree=$(paste <(classes <<<"$out") <(echo "$reference") | awk '$1 == $2' | wc -l)
            echo "  (CMSIS-NN's class equals the engine's on $agree of $count images; its 8-bit logits, rounded twice, are not ours)" >&2
            if [ $cpu = cortex-m4 ] && [ $opt = O3 ]; then
                grep '^layer' <<<"$out" | sed 's/^/  CMSIS-NN -O3 M4 /' >&2
            fi
        done
    done
else
    echo "(CMSIS_NN and CMSIS_6 not set: CMSIS-NN not measured)" >&2
fi
