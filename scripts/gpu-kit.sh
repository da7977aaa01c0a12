#!/usr/bin/env bash
# The GPU kit: every GPU figure of this project from one short run on a machine that has
# an NVIDIA GPU but no Rust toolchain, no crates and no network (issue 13).
#
#   scripts/gpu-kit.sh build   # here, on the CPU machine: fills .gpu/ (git-ignored)
#   scripts/gpu-kit.sh run     # there, from the checkout's root, with .gpu/ carried along
#
# `build` makes release builds with `--features cuda` of the `trainer` binary and of the
# inference bench, strips them, compresses them with xz and copies them with the four
# dataset files into .gpu/, and refuses a kit over 60 MiB. cubecl-cuda loads the CUDA
# driver and NVRTC at run time, so nothing CUDA is needed to build.
#
# `run` needs no cargo. In order, each step under its own time limit so that a slow step
# loses its own figures and not the others':
#   1. nvidia-smi, the CUDA libraries found (ldconfig, and any Python environment's
#      site-packages/nvidia/*/lib), LD_LIBRARY_PATH set from them;
#   2. the notebook's CNN, its recipe (5 epochs) on --device cuda: s/epoch, val/test accuracy;
#   3. `edge` with a GPU recipe (batch 512, lr 6e-3): an epoch on 10,000 images to time it,
#      then as many epochs as fit in about 130 s (one-cycle over them), the time to 92.5%
#      validation accuracy, the test accuracy, ONNX and int8 exports;
#   4. the inference bench's burn-cuda rows (batch 1, 256, 4096, 65536; with the host
#      copies, and resident on the device) and the int8 engine's (one thread, all threads);
#   5. $OUT/gpu.json and $OUT/gpu.log (OUT defaults to ./gpu-out).
# It ends in about 6 minutes, and in at most 515 s, the sum of the step limits (a step that
# ignores its stop signal is killed 5-10 s later), inside the device call's 540 s. Without a usable
# GPU the trainer stops at step 2 with one line naming the cause and exit code 3, and so
# does this script.
set -uo pipefail

KIT=.gpu
MAX_KIT_BYTES=$((60 * 1024 * 1024))
DATA_SRC=${FMNIST_DATA:-/usr/share/datasets/fashion-mnist}
FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

die() {
    echo "gpu-kit: $*" >&2
    exit 1
}

# The path of the executable named like the pattern $1 in cargo's JSON messages on stdin.
executable() {
    grep -o "\"executable\":\"[^\"]*/$1\"" | tail -n 1 | cut -d'"' -f4
}

build() {
    set -e
    cd "$(dirname "$0")/.."
    for f in "${FILES[@]}"; do
        [ -f "$DATA_SRC/$f" ] || die "$DATA_SRC/$f missing (apt-get install -y dataset-fashion-mnist)"
    done
    # The executables' paths as cargo reports them (CARGO_TARGET_DIR may be anywhere).
    local trainer bench
    trainer=$(cargo build --release -p fmnist-trainer --features cuda --bin trainer \
        --message-format=json-render-diagnostics | executable trainer)
    [ -x "$trainer" ] || die "the trainer was not built"
    bench=$(cargo bench --no-run -p fmnist-edge --features cuda --bench inference \
        --message-format=json-render-diagnostics | executable 'inference-[0-9a-f]*')
    [ -x "$bench" ] || die "the inference bench was not built"
    rm -rf "$KIT"
    mkdir -p "$KIT/bin" "$KIT/data"
    for pair in "$trainer:trainer" "$bench:inference"; do
        local from=${pair%%:*} name=${pair##*:}
        strip -o "$KIT/bin/$name" "$from"
        xz -9 -T0 "$KIT/bin/$name"
    done
    for f in "${FILES[@]}"; do
        cp "$DATA_SRC/$f" "$KIT/data/"
    done
    {
        git rev-parse HEAD
        git diff --quiet HEAD || echo "plus uncommitted changes"
    } >"$KIT/commit"
    local bytes
    bytes=$(du -sb "$KIT" | cut -f1)
    ls -l "$KIT"/bin "$KIT"/data
    echo "kit: $KIT, $bytes bytes ($((bytes / 1024 / 1024)) MiB), commit $(head -n 1 "$KIT/commit")"
    [ "$bytes" -le "$MAX_KIT_BYTES" ] || die "the kit is over 60 MiB"
}

# Prints `key value` per figure; gpu.json is written from them at the end.
FIGURES=()
figure() {
    FIGURES+=("$1=$2")
    echo "figure: $1 = $2"
}

# The value of a top-level number field of a run.json.
json_number() {
    grep -o "\"$2\": *[0-9.eE+-]*" "$1" | head -n 1 | sed 's/.*: *//'
}

# Finds libcuda/libnvrtc and sets LD_LIBRARY_PATH.
find_libraries() {
    local dirs=() d
    while read -r d; do dirs+=("$d"); done < <(ldconfig -p 2>/dev/null |
        grep -E 'lib(cuda|nvrtc)\.so' | sed 's/.*=> //' | xargs -r -n1 dirname | sort -u)
    # The driver's own mount (/usr/local/nvidia on this workplace's GPU machines), the
    # toolkit, and Python environments' wheels (nvidia/cu13/lib, nvidia/cuda_nvrtc/lib).
    while read -r d; do dirs+=("$d"); done < <(timeout 15 find /usr/local /usr/lib /usr/lib64 /opt \
        -maxdepth 7 \( -name 'libcuda.so*' -o -name 'libnvrtc.so*' \) 2>/dev/null |
        xargs -r -n1 dirname | sort -u)
    while read -r d; do dirs+=("$d"); done < <(timeout 15 find / -maxdepth 9 \
        \( -path /proc -o -path /sys -o -path /dev -o -path "$PWD" \) -prune -o \
        -type d -path '*site-packages/nvidia/*/lib' -print 2>/dev/null | sort -u)
    mapfile -t dirs < <(printf '%s\n' "${dirs[@]}" | awk 'NF && !seen[$0]++')
    local joined
    joined=$(printf '%s:' "${dirs[@]}")
    export LD_LIBRARY_PATH="${joined}${LD_LIBRARY_PATH:-}"
    echo "library directories: ${dirs[*]:-none}"
    for d in "${dirs[@]}"; do
        ls "$d" 2>/dev/null | grep -E '^lib(cuda|nvrtc)[^/]*\.so' | sed "s|^|  $d/|"
    done
}

# The per-epoch values of field $2 ("seconds", "val_acc") in run directory $1's run.json,
# one per line: from its "epochs" list only (`best` has a val_acc too).
epoch_values() {
    sed -n '/^  "epochs": \[/,/^  \]/p' "$1/run.json" 2>/dev/null |
        grep -o "\"$2\": *[0-9.]*" | sed 's/.*: *//'
}

# The figures every training step gives, named after $1: epochs, mean s/epoch, the last
# validation accuracy of run directory $2.
run_figures() {
    figure "$1_epochs" "$(epoch_values "$2" seconds | wc -l)"
    figure "$1_seconds_per_epoch" "$(epoch_values "$2" seconds | awk '{s += $1} END {if (NR) printf "%.2f", s / NR}')"
    figure "$1_val_accuracy" "$(epoch_values "$2" val_acc | tail -n 1)"
}

run() {
    cd "$(dirname "$0")/.."
    [ -d "$KIT/bin" ] || die "no $KIT/ here: run \`scripts/gpu-kit.sh build\` on the CPU machine and carry .gpu"
    OUT=${OUT:-$PWD/gpu-out}
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/gpu.log") 2>&1
    local work
    work=$(mktemp -d /tmp/gpu-kit.XXXXXX)
    local data="$KIT/data"
    echo "== gpu-kit run, $(date -u +%FT%TZ), kit commit $(head -n 1 "$KIT/commit")"
    for name in trainer inference; do
        xz -dc "$KIT/bin/$name.xz" >"$work/$name" && chmod +x "$work/$name" ||
            die "cannot unpack $name"
    done
    local trainer="$work/trainer"

    echo "== 1. the GPU and its libraries"
    nvidia-smi || echo "nvidia-smi: not available"
    local gpu driver
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
    find_libraries
    echo "cores: $(nproc)"

    echo "== 2. the notebook's CNN, its recipe, on CUDA"
    timeout -k 10 -s INT 90 "$trainer" fit --device cuda --model cnn --replicas 1 \
        --data "$data" --out "$work/cnn" --no-progress
    local status=$?
    if [ "$status" -eq 3 ]; then
        echo "gpu-kit: no usable CUDA GPU (the line above says why); nothing measured"
        write_json "$gpu" "$driver" "no usable CUDA GPU"
        exit 3
    fi
    if [ -f "$work/cnn/run.json" ]; then
        run_figures cnn "$work/cnn"
        figure cnn_test_accuracy "$(json_number "$work/cnn/run.json" test_accuracy)"
    fi

    echo "== 3. edge, a GPU recipe (batch 512, lr 6e-3)"
    local edge=(--device cuda --model edge --batch 512 --lr 0.006 --replicas 1 --data "$data" --no-progress)
    timeout -k 10 -s INT 45 "$trainer" fit "${edge[@]}" --epochs 1 --train-limit 10000 \
        --test-limit 1000 --out "$work/edge-probe"
    local probe epochs
    probe=$(epoch_values "$work/edge-probe" seconds | head -n 1)
    if [ -n "$probe" ]; then
        # 59,000 images an epoch; about 130 s of training in all, 3 to 40 epochs.
        epochs=$(awk -v p="$probe" 'BEGIN {e = int(130 / (p * 5.9)); if (e < 3) e = 3; if (e > 40) e = 40; print e}')
        figure edge_probe_seconds_per_10000_images "$probe"
    else
        epochs=3
    fi
    echo "edge: $epochs epochs"
    local started=$SECONDS
    timeout -k 10 -s INT 160 "$trainer" fit "${edge[@]}" --epochs "$epochs" --out "$work/edge"
    figure edge_wall_seconds $((SECONDS - started))
    if [ -f "$work/edge/run.json" ]; then
        run_figures edge "$work/edge"
        # Time to 92.5% validation accuracy: the epochs' seconds summed up to the first
        # epoch at or above it.
        figure edge_seconds_to_92_5_val "$(paste <(epoch_values "$work/edge" val_acc) \
            <(epoch_values "$work/edge" seconds) | awk '!done {t += $2; if ($1 >= 0.925) {printf "%.1f", t; done = 1}} END {if (!done) print "not reached"}')"
        timeout -k 5 40 "$trainer" export --checkpoint "$work/edge" --onnx "$OUT/edge-gpu.onnx" \
            --q8 "$OUT/edge-gpu.q8" --data "$data"
        figure edge_test_accuracy "$(timeout -k 5 30 "$trainer" eval --checkpoint "$work/edge" \
            --device cuda --data "$data" --json 2>/dev/null | grep -o '"accuracy": *[0-9.]*' | head -n 1 | sed 's/.*: *//')"
    fi

    echo "== 4. inference: burn-cuda and the int8 engine"
    FMNIST_MODELS="$PWD/models" FMNIST_DATA="$data" RAYON_NUM_THREADS=1 timeout -k 5 120 \
        "$work/inference" --warm-up-time 0.5 --measurement-time 1 --sample-size 10 \
        'cuda|int8' | tee "$work/bench.txt"
    # "edge/batch256/burn-cuda-f32" then "time: [...]" and "thrpt: [a b c]": the middle value.
    while read -r id value unit; do
        figure "bench:$id" "$value $unit"
    done < <(awk '/^[a-z]+\/batch[0-9]+\// {id = $1}
        /thrpt:/ {gsub(/[\[\]]/, ""); print id, $4, $5}' "$work/bench.txt")

    write_json "$gpu" "$driver" "ok"
    echo "== done: $OUT/gpu.json, $OUT/gpu.log"
}

write_json() {
    {
        printf '{\n  "commit": "%s",\n  "gpu": "%s",\n  "driver": "%s",\n  "status": "%s",\n  "figures": {' \
            "$(head -n 1 "$KIT/commit")" "$1" "$2" "$3"
        local sep="" item
        for item in "${FIGURES[@]}"; do
            printf '%s\n    "%s": "%s"' "$sep" "${item%%=*}" "${item#*=}"
            sep=","
        done
        printf '\n  }\n}\n'
    } >"$OUT/gpu.json"
}

case "${1:-}" in
build) build ;;
run) run ;;
*)
    echo "usage: scripts/gpu-kit.sh build|run" >&2
    exit 2
    ;;
esac
