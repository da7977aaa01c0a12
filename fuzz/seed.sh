#!/usr/bin/env bash
# Seeds the fuzz corpora from real files: the shipped blobs and ONNX files, the sample
# PNGs, small IDX (raw and gzipped) and CSV files cut from the Debian dataset, and the
# files of a one-epoch cnn run directory (written by the trainer's replay test).
set -euo pipefail
cd "$(dirname "$0")"
data="${FMNIST_DATA:-/usr/share/datasets/fashion-mnist}"
mkdir -p corpus/blob corpus/dataset corpus/image corpus/onnx corpus/rundir

# blob: mode byte 0 + a whole blob; mode byte 1 + its payload (the envelope stripped);
# mode byte 3 + the payload as format 1 wrote it (without the temperature, its last 4 bytes).
python3 - "$@" <<'PY'
import pathlib
def varint(b, i):
    shift = value = 0
    while True:
        byte = b[i]; i += 1
        value |= (byte & 0x7f) << shift; shift += 7
        if byte < 0x80:
            return value, i
for name in ["edge", "cnn", "edge7"]:
    blob = pathlib.Path(f"../models/{name}.q8").read_bytes()
    pathlib.Path(f"corpus/blob/{name}-whole").write_bytes(b"\x00" + blob)
    i = 4                          # magic
    _, i = varint(blob, i)         # version
    _, i = varint(blob, i)         # crc32
    n, i = varint(blob, i)         # payload length
    pathlib.Path(f"corpus/blob/{name}-payload").write_bytes(b"\x01" + blob[i:i + n])
    pathlib.Path(f"corpus/blob/{name}-payload-v1").write_bytes(b"\x03" + blob[i:i + n - 4])
PY

# dataset: 3 images and 3 labels, raw and gzipped, and a 3-row CSV.
python3 - "$data" <<'PY'
import gzip, pathlib, struct, sys
data = pathlib.Path(sys.argv[1])
def read(name):
    for p in (data / name, data / (name + ".gz")):
        if p.exists():
            raw = p.read_bytes()
            return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    sys.exit(f"{data}: no {name}; install dataset-fashion-mnist")
images = read("t10k-images-idx3-ubyte")[16:16 + 3 * 784]
labels = read("t10k-labels-idx1-ubyte")[8:8 + 3]
idx3 = struct.pack(">IIII", 0x803, 3, 28, 28) + images
idx1 = struct.pack(">II", 0x801, 3) + labels
out = pathlib.Path("corpus/dataset")
(out / "images").write_bytes(idx3)
(out / "labels").write_bytes(idx1)
(out / "images.gz").write_bytes(gzip.compress(idx3))
(out / "labels.gz").write_bytes(gzip.compress(idx1))
rows = ["label," + ",".join(f"pixel{i + 1}" for i in range(784))]
for k in range(3):
    rows.append(",".join([str(labels[k])] + [str(p) for p in images[k * 784:(k + 1) * 784]]))
(out / "train.csv").write_text("\n".join(rows) + "\n")
PY

cp ../models/samples/*.png corpus/image/
cp ../models/cnn.onnx corpus/onnx/
# rundir: model.mpk, resume.state (payload and whole) and run.json, each after its mode byte.
FMNIST_WRITE_SEEDS="$(pwd)/corpus/rundir" \
    cargo test --manifest-path ../Cargo.toml -p fmnist-trainer --test fuzz_regressions -q
echo "corpora seeded in $(pwd)/corpus"
