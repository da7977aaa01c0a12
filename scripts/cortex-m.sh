#!/usr/bin/env bash
# Builds the engine's firmware for a Cortex-M4F (thumbv7em-none-eabihf, the DSP kernels)
# and runs it on QEMU's emulated MPS2-AN386 board over real test images: each image's
# class, its label, and the instructions `Plan::classify` executed.
#
#   scripts/cortex-m.sh [COUNT] [--m7]     # default 10 images; --m7: the MPS2-AN500 (Cortex-M7)
#
# Needs the thumbv7em-none-eabihf target, qemu-system-arm and the Debian dataset
# (scripts/test.sh installs all three).
set -euo pipefail
cd "$(dirname "$0")/.."
count=10
board=mps2-an386
cpu=cortex-m4
for arg in "$@"; do
    case $arg in
    --m7) board=mps2-an500 cpu=cortex-m7 ;;
    [0-9]*) count=$arg ;;
    *)
        echo "usage: scripts/cortex-m.sh [COUNT] [--m7]" >&2
        exit 2
        ;;
    esac
done
data=${FMNIST_DATA:-/usr/share/datasets/fashion-mnist}
for tool in qemu-system-arm gzip; do
    command -v $tool >/dev/null || { echo "$tool is missing: run scripts/test.sh once (it installs it)" >&2; exit 1; }
done
[ -f "$data/t10k-images-idx3-ubyte.gz" ] || { echo "no test images in $data: run scripts/test.sh once (it installs dataset-fashion-mnist)" >&2; exit 1; }

work=target/cortex-m-demo
mkdir -p $work
(set +o pipefail
    gzip -dc "$data/t10k-images-idx3-ubyte.gz" | tail -c +17 | head -c $((784 * count)) >$work/images.bin
    gzip -dc "$data/t10k-labels-idx1-ubyte.gz" | tail -c +9 | head -c "$count" | od -An -tu1 -v >$work/labels.txt)
(cd runtime/firmware/cortex-m && cargo build -q --release --bin classify --target-dir "$OLDPWD/$work/build")
elf=$work/build/thumbv7em-none-eabihf/release/classify
echo "$board ($cpu), QEMU -icount shift=0: $count test images, shipped edge model" >&2
qemu-system-arm -machine $board -cpu $cpu -nographic -icount shift=0 \
    -semihosting-config "enable=on,target=native,arg=classify,arg=bench,arg=-,arg=$PWD/$work/images.bin,arg=$count" \
    -kernel "$elf" | awk -v labels="$(cat $work/labels.txt)" '
    BEGIN {
        split("T-shirt/top Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag Ankle-boot", name, " ")
        n = split(labels, label, " ")
    }
    $1 == "kernels" { kernels = $2 }
    $1 == "arena" { arena = $2 }
    $1 == "stack" { stack = $2 }
    $1 == "macs" { macs = $2 }
    $1 == "logits" {
        best = 3
        for (i = 4; i <= 12; i++) if ($i > $best) best = i
        class = best - 3
        truth = label[$2 + 1]
        right += (class == truth)
        images++
        instructions = $13
        printf "image %3d: %-12s (label %-12s) %d instructions\n", $2, name[class + 1], name[truth + 1], instructions
    }
    $1 == "error" { print; failed = 1 }
    END {
        if (failed || images == 0) exit 1
        printf "%d of %d right; %s kernels, %.2f instructions per multiply-accumulate; arena %d B, stack %d B\n", right, images, kernels, instructions / macs, arena, stack
    }'
