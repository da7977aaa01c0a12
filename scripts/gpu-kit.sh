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
# driver and NVRTC at run time, so nothing CUDA is needed to build. cubecl compiles every
# kernel on first use and autotunes matmuls and convolutions by compiling and timing the
# candidates, for every new tensor shape: 25-50 s each time on the H200, so the first two
# runs finished no training epoch, and with the caches of earlier runs the notebook's CNN
# compiled nothing and trained 5 epochs in 15.6 s.
# Keep a run's caches here and the next kit carries them (xz, 2-4 MiB):
#
#   mkdir -p gpu-cache && tar -xzf work.tgz -C gpu-cache ./cuda ./autotune
#
# `run` needs no cargo. In order, each step under its own time limit so that a slow step
# loses its own figures and not the others':
#   1. nvidia-smi, the CUDA libraries found (ldconfig, and any Python environment's
#      site-packages/nvidia/*/lib), LD_LIBRARY_PATH set from them;
#   2. the notebook's CNN, its recipe (5 epochs) on --device cuda: s/epoch, val/test
#      accuracy; then PyTorch's, benches/pytorch/train_speed.py --device cuda, 5 epochs,
#      where a Python with torch and CUDA is found (/opt/torch/.venv on the device
#      machine), under GPU_KIT_TORCH_SECONDS (60);
#   3. the inference bench's burn-cuda rows (batch 1, 256, 4096, 65536; with the host
#      copies, and resident on the device) and the int8 engine's (AVX2, AVX-512 VNNI where
#      the CPU has it, one thread and all threads); GPU_KIT_BENCH (a regular expression
#      over the rows' names) narrows them to those an earlier run missed,
#      GPU_KIT_BENCH_SECONDS (0: none) is their time;
#   4. issue 17's edge at 94% in int8, in the time left: `edge14` (the kind of the shipped
#      models/edge.*) with its own recipe, distilled from the shipped models/wide.onnx: a
#      second run of the shipped model's kind, for as many epochs (at most 60) as the
#      time left holds at GPU_KIT_EDGE_EPOCH_S seconds an epoch (default 5) after
#      GPU_KIT_COMPILE_S (default 90) of compiling; exported to $OUT/edge14-gpu.{onnx,q8}
#      with its run.json, the export printing the float and int8 test accuracy; the time
#      to 92.5% validation accuracy;
#   5. $OUT/gpu.json, $OUT/gpu.log and $OUT/logs.tgz (cubecl's logs and the progress
#      bars: the device tool brings back at most 8 files); OUT defaults to ./gpu-out.
# Training steps run on a pseudo-terminal (`script`), their progress bars in
# $OUT/*-tty.log (packed into logs.tgz at the end): they showed where the time goes. cubecl compiles and
# autotunes the kernels of every new tensor shape: the first steps of an epoch, its last
# (smaller) batch and its validation each cost 25-50 s, while the CNN's other 184 steps
# took about a second; two-epoch probes on 5,000 images measured nothing but compiling.
# It ends by 565 s (GPU_KIT_SECONDS) after it starts, steps 1-3 within their limits and
# step 4 sized to the time left (a step that ignores its stop signal is killed 5-10 s
# later): call it with the device call's timeout 30 s above that. Without a usable GPU the
# trainer stops at step 2 with one line naming the cause and exit code 3, and so does this
# script.
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
    # cubecl's caches from an earlier run (compiled kernels and autotune results), if kept
    # in gpu-cache/ as the README says: the run then skips compiling what it has compiled.
    if [ -d gpu-cache/cuda ] || [ -d gpu-cache/autotune ]; then
        tar -cJf "$KIT/cache.tar.xz" -C gpu-cache --exclude='*.lock' \
            $(cd gpu-cache && ls -d cuda autotune 2>/dev/null)
    fi
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

# Trains model $1 for $2 epochs within $3 seconds (interrupted then, keeping its complete
# epochs), the rest of the arguments being the recipe; exports it to $OUT/$1-gpu.onnx and
# .q8 (the export prints float and int8 test accuracy) and copies its run.json there.
train_and_export() {
    local model=$1 epochs=$2 limit=$3
    shift 3
    local dir="$work/$model" started=$SECONDS best=()
    [ "$limit" -gt 10 ] || { echo "$model: no time left"; return; }
    on_tty "$model" timeout -k 10 -s INT "$limit" "$trainer" fit --model "$model" "$@" --epochs "$epochs" \
        --out "$dir"
    [ $? -eq 0 ] || best=(--best)
    figure "${model}_wall_seconds" $((SECONDS - started))
    [ -f "$dir/run.json" ] || return
    cp "$dir/run.json" "$OUT/$model-gpu-run.json"
    run_figures "$model" "$dir"
    figure "${model}_test_accuracy" "$(json_number "$dir/run.json" test_accuracy)"
    timeout -k 5 45 "$trainer" export --checkpoint "$dir" "${best[@]}" --onnx "$OUT/$model-gpu.onnx" \
        --q8 "$OUT/$model-gpu.q8" --data "$data" | tee "$work/$model-export.txt"
    figure "${model}_int8_test_accuracy" "$(grep -o 'test accuracy: *float [0-9.]*%, int8 [0-9.]*%' \
        "$work/$model-export.txt" | sed 's/.*int8 //')"
}

stamp() {
    local compiled=""
    [ -f "${OUT:-}/cubecl-compile.log" ] &&
        compiled=", $(grep -c 'Compiling kernel' "$OUT/cubecl-compile.log") kernels compiled so far"
    echo "$* [$(date -u +%T), ${SECONDS} s$compiled]"
}

# Runs the command "$@" on a pseudo-terminal when `script` is there, so that the trainer
# draws its progress bar (step counts and elapsed time: the only view into an epoch that
# does not finish) into $OUT/$name-tty.log, $name being the first argument; prints that
# log's last lines and returns the command's exit status.
on_tty() {
    local name=$1
    shift
    if ! command -v script >/dev/null; then
        "$@"
        return
    fi
    script -qfec "$(printf '%q ' "$@")" "$OUT/$name-tty.log" >/dev/null
    local status=$?
    tr '\r' '\n' <"$OUT/$name-tty.log" | grep -v '^[[:space:]]*$' | tail -n 4
    return "$status"
}

run() {
    cd "$(dirname "$0")/.."
    [ -d "$KIT/bin" ] || die "no $KIT/ here: run \`scripts/gpu-kit.sh build\` on the CPU machine and carry .gpu"
    OUT=$(realpath -m "${OUT:-gpu-out}")
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/gpu.log") 2>&1
    work=$(mktemp -d /tmp/gpu-kit.XXXXXX)
    KIT=$PWD/$KIT
    data="$KIT/data"
    local models="$PWD/models" torch_speed="$PWD/benches/pytorch/train_speed.py"
    # cubecl reads cubecl.toml from the working directory: every step runs in $work and
    # shares one on-disk cache of compiled kernels and autotune results, and autotunes at
    # the minimal level (at the default level the first run spent its 90 s on the
    # notebook's CNN without finishing an epoch; at the minimal level the second did too,
    # compiling 398 kernels). The caches come back in $OUT/work.tgz.
    cat >"$work/cubecl.toml" <<TOML
[autotune]
level = "minimal"
cache = "local"

[autotune.logger]
level = "minimal"
file = "$OUT/cubecl-autotune.log"

[compilation]
cache = "local"

[compilation.logger]
level = "basic"
file = "$OUT/cubecl-compile.log"
TOML
    cd "$work" || die "cannot enter $work"
    if [ -f "$KIT/cache.tar.xz" ]; then
        tar -xJf "$KIT/cache.tar.xz" && echo "cubecl caches from an earlier run: $(du -sh cuda autotune 2>/dev/null | tr '\n' ' ')"
    fi
    DEADLINE=$((SECONDS + ${GPU_KIT_SECONDS:-565}))
    stamp "== gpu-kit run, $(date -u +%FT%TZ), kit commit $(head -n 1 "$KIT/commit")"
    for name in trainer inference; do
        xz -dc "$KIT/bin/$name.xz" >"$work/$name" && chmod +x "$work/$name" ||
            die "cannot unpack $name"
    done
    trainer="$work/trainer"

    stamp "== 1. the GPU and its libraries"
    nvidia-smi || echo "nvidia-smi: not available"
    local gpu driver
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
    find_libraries
    echo "cores: $(nproc), CPU: $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2-)"

    stamp "== 2. the notebook's CNN, its recipe, on CUDA"
    on_tty cnn timeout -k 10 -s INT "${GPU_KIT_CNN_SECONDS:-120}" "$trainer" fit --device cuda --model cnn --replicas 1 \
        --data "$data" --out "$work/cnn"
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

    stamp "== 2b. PyTorch's notebook CNN on the same GPU (benches/pytorch/train_speed.py)"
    # The first Python that imports torch with CUDA: the device machine has /opt/torch/.venv.
    local py="" candidate
    for candidate in /opt/torch/.venv/bin/python python3; do
        if timeout 60 "$candidate" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
            py=$candidate
            break
        fi
    done
    if [ -n "$py" ]; then
        timeout -k 5 "${GPU_KIT_TORCH_SECONDS:-60}" "$py" "$torch_speed" --device cuda --epochs 5 \
            --data "$data" | tee "$work/torch.txt"
        figure pytorch_cuda_seconds_per_epoch "$(grep -o 's_per_epoch=[0-9.]*' "$work/torch.txt" | cut -d= -f2)"
        figure pytorch_cuda_epoch_walls "$(grep -o 'batches in [0-9.]*s' "$work/torch.txt" | awk '{printf "%s%s", sep, $3; sep = " "}')"
    else
        echo "no Python with torch and CUDA found"
    fi

    stamp "== 3. inference: burn-cuda and the int8 engine"
    echo "bench rows: ${GPU_KIT_BENCH:=cuda|int8/(avx|amx)|threads}, ${GPU_KIT_BENCH_SECONDS:=100} s"
    if [ "$GPU_KIT_BENCH_SECONDS" -gt 0 ]; then
        # --bench: without it criterion only tests that each benchmark runs once.
        FMNIST_MODELS="$models" FMNIST_DATA="$data" timeout -k 5 "$GPU_KIT_BENCH_SECONDS" \
            "$work/inference" --bench --warm-up-time 0.5 --measurement-time 1 --sample-size 10 \
            "$GPU_KIT_BENCH" | tee "$work/bench.txt"
        # "edge/batch256/burn-cuda-f32" then "time: [...]" and "thrpt: [a b c]": the middle value.
        while read -r id value unit; do
            figure "bench:$id" "$value $unit"
        done < <(awk '/^[a-z]+\/batch[0-9]+\// {id = $1}
            /thrpt:/ {gsub(/[\[\]]/, ""); print id, $4, $5}' "$work/bench.txt")
    fi

    stamp "== 4. edge14 at 94% (issue 17): distilled from models/wide.onnx, in the time left"
    # Seconds left for training: to the deadline, less the export (45 s) and 15 s.
    local left=$((DEADLINE - SECONDS - 60))
    local epochs
    epochs=$(awk -v t="$left" -v c="${GPU_KIT_COMPILE_S:-90}" -v e="${GPU_KIT_EDGE_EPOCH_S:-5}" \
        'BEGIN {n = int((t - c) / e); print (n > 60) ? 60 : n}')
    echo "$left s left: $epochs epochs"
    figure edge14_planned_epochs "$epochs"
    if [ "$epochs" -ge 3 ]; then
        train_and_export edge14 "$epochs" "$left" --device cuda --replicas 1 --data "$data" \
            --teacher "$models/wide.onnx"
        local dir="$work/edge14"
        if [ -f "$dir/run.json" ]; then
            # Time to 92.5% validation accuracy: the epochs' seconds summed up to the first
            # epoch at or above it.
            figure edge14_seconds_to_92_5_val "$(paste <(epoch_values "$dir" val_acc) \
                <(epoch_values "$dir" seconds) | awk '!done {t += $2; if ($1 >= 0.925) {printf "%.1f", t; done = 1}} END {if (!done) print "not reached"}')"
        fi
    fi

    # The run directories, logs and cubecl's caches (not the executables), for a later run
    # to start from and for the record.
    tar -czf "$OUT/work.tgz" --exclude=./trainer --exclude=./inference -C "$work" . &&
        [ "$(stat -c %s "$OUT/work.tgz")" -le $((40 * 1024 * 1024)) ] || rm -f "$OUT/work.tgz"
    # The device tool brings back at most 8 files: the logs go into one.
    (cd "$OUT" && tar -czf logs.tgz --remove-files cubecl-*.log ./*-tty.log 2>/dev/null)
    write_json "$gpu" "$driver" "ok"
    stamp "== done: $OUT/gpu.json, $OUT/gpu.log, $OUT/logs.tgz"
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
