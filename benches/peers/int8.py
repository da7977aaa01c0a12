#!/usr/bin/env python3
"""The int8 peers a user would pick for fast CPU inference: onnxruntime running a
statically quantized model, and OpenVINO running the same file (plus OpenVINO in
float32), on the shipped ONNX models and the first 2,000 test images. Writes a Markdown
table (stdout and --out).

The quantized models are made here with onnxruntime's `quantize_static`: QDQ format,
per-channel symmetric i8 weights, u8 activations, min-max calibration on the first 2,048
training images (as `trainer export` calibrates the int8 blob). Their test accuracy on
the 10,000 test images is printed beside the timings, so a fast peer cannot hide a loss.

Timings, one thread unless a row says otherwise, µs per image:
- `benchmark_app` (OpenVINO's C++ loop, no Python in the timing): `-api sync -hint none
  -nthreads 1 -nstreams 1`, batch 1 and 64; and `-hint throughput` on all cores at
  batch 64;
- Python: onnxruntime `session.run` and OpenVINO `InferRequest.infer`, the best of 5
  rounds over the 2,000 images, one call per image (batch 1) or per 64 images.

`--isa` caps OpenVINO's kernels for comparing with one of the engine's tiers on a machine
that has more: `avx2` (`ONEDNN_MAX_CPU_ISA=AVX2`), `avx-vnni` (`AVX2_VNNI`: AVX2 with the
VEX `vpdpbusd`, the Alder Lake class), `avx512-vnni` (`AVX512_CORE_VNNI`: no AMX).
onnxruntime has no such switch and runs its best kernels.

    python3 -m venv /tmp/ov-venv
    /tmp/ov-venv/bin/pip install -r benches/peers/requirements-int8.txt
    /tmp/ov-venv/bin/python benches/peers/int8.py --isa avx2 --out /tmp/int8.md
"""

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 2000
CALIBRATION = 2048
# --isa: the oneDNN ISA cap (ONEDNN_MAX_CPU_ISA) matching each of the engine's tiers.
CAPS = {"avx2": "AVX2", "avx-vnni": "AVX2_VNNI", "avx512-vnni": "AVX512_CORE_VNNI"}


def idx_images(data_dir, stem):
    """`stem`'s images as uint8 [n, 784] (the .gz or the plain IDX file)."""
    import numpy as np

    for name in (f"{stem}.gz", stem):
        path = Path(data_dir) / name
        if path.exists():
            raw = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
            return np.frombuffer(raw[16:], dtype=np.uint8).reshape(-1, 784)
    raise SystemExit(f"{data_dir}: no {stem}(.gz); install dataset-fashion-mnist")


def idx_labels(data_dir, stem):
    import numpy as np

    for name in (f"{stem}.gz", stem):
        path = Path(data_dir) / name
        if path.exists():
            raw = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
            return np.frombuffer(raw[8:], dtype=np.uint8)
    raise SystemExit(f"{data_dir}: no {stem}(.gz)")


def as_input(pixels):
    import numpy as np

    return (pixels.astype(np.float32) * np.float32(1.0 / 255.0)).reshape(-1, 1, 28, 28)


def quantize(float_path, out_path, train):
    """QDQ int8 model of `float_path`, calibrated on the first training images."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            batches = as_input(train[:CALIBRATION])
            self.items = iter([{"image": batches[i:i + 64]} for i in range(0, len(batches), 64)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(float_path), str(out_path), Reader(),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def ort_session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


def openvino_request(path, precision):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({"image": [-1, 1, 28, 28]})
    config = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()

    def run(x):
        request.infer({0: x})
        return request.get_output_tensor(0).data

    return run


def accuracy(run, test, labels):
    import numpy as np

    x = as_input(test)
    predicted = np.concatenate([run(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
    return float(np.mean(predicted == labels))


def python_timing(run, x, batch):
    """µs per image: the best of 5 rounds over `x`, `batch` images per call."""
    calls = [x[i:i + batch] for i in range(0, len(x) - batch + 1, batch)]
    for c in calls[:20]:
        run(c)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for c in calls:
            run(c)
        best = min(best, time.perf_counter() - start)
    return best * 1e6 / (len(calls) * batch)


def benchmark_app(path, batch, threads, hint, seconds, precision):
    """µs per image from OpenVINO's C++ benchmark loop."""
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    command = [tool, "-m", str(path), "-d", "CPU", "-api", "sync" if hint == "none" else "async",
               "-hint", hint, "-shape", f"[{batch},1,28,28]", "-t", str(seconds)]
    if threads:
        command += ["-nthreads", str(threads)]
    if hint == "none":
        command += ["-nstreams", "1"]
    if precision:
        command += ["-infer_precision", precision]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark_app failed on {path}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    fps = re.search(r"Throughput:\s+([0-9.]+)\s+FPS", out.stdout)
    if not fps:
        raise SystemExit(f"benchmark_app printed no throughput:\n{out.stdout[-2000:]}")
    return 1e6 / float(fps.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "edge"], help="kinds in models/")
    parser.add_argument("--data", default=os.environ.get("FMNIST_DATA", "/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--isa", choices=["best", *CAPS], default="best",
                        help="cap OpenVINO's kernels (ONEDNN_MAX_CPU_ISA: "
                        + ", ".join(f"{k} {v}" for k, v in CAPS.items()) + ")")
    parser.add_argument("--seconds", type=int, default=5, help="benchmark_app time per row")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    if args.isa in CAPS:
        # Read when OpenVINO's CPU plugin loads: set before the first import.
        os.environ["ONEDNN_MAX_CPU_ISA"] = CAPS[args.isa]

    from importlib.metadata import version

    train = idx_images(args.data, "train-images-idx3-ubyte")
    test = idx_images(args.data, "t10k-images-idx3-ubyte")
    labels = idx_labels(args.data, "t10k-labels-idx1-ubyte")
    x = as_input(test[:IMAGES])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [
        f"Machine: {cpu}, {os.cpu_count()} cores; OpenVINO {version('openvino')}, "
        f"onnxruntime {version('onnxruntime')}; OpenVINO kernels: "
        f"{'capped at ' + CAPS[args.isa] if args.isa in CAPS else 'best available'}.",
        f"Command: `python benches/peers/int8.py --isa {args.isa} --seconds {args.seconds}`",
        "",
        "| model | path | test accuracy | threads | batch 1: µs/image | batch 64: µs/image |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def row(*cells):
        line = "| " + " | ".join(cells) + " |"
        print(line, file=sys.stderr)
        lines.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models:
            float_path = ROOT / "models" / f"{kind}.onnx"
            int8_path = Path(tmp) / f"{kind}.int8.onnx"
            quantize(float_path, int8_path, train)
            ort_int8 = ort_session(int8_path)
            # The fp32 rows in f32: on CPUs with AMX or AVX-512 BF16, OpenVINO would
            # otherwise run the float model in bf16. The int8 model's float parts keep
            # OpenVINO's default, except under a cap (bf16 kernels need AVX-512).
            int8_precision = "f32" if args.isa in CAPS else None
            ov_int8 = openvino_request(int8_path, int8_precision)
            ov_float = openvino_request(float_path, "f32")
            acc = {name: f"{100 * accuracy(run, test, labels):.2f}%"
                   for name, run in [("ort", ort_int8), ("ov", ov_int8), ("ovf", ov_float)]}
            for name, path, a, precision in [
                ("OpenVINO int8, benchmark_app", int8_path, acc["ov"], int8_precision),
                ("OpenVINO fp32, benchmark_app", float_path, acc["ovf"], "f32"),
            ]:
                b1 = benchmark_app(path, 1, 1, "none", args.seconds, precision)
                b64 = benchmark_app(path, 64, 1, "none", args.seconds, precision)
                row(f"`{kind}`", name, a, "1", f"{b1:.1f}", f"{b64:.1f}")
            all_cores = benchmark_app(int8_path, 64, None, "throughput", args.seconds,
                                      int8_precision)
            row(f"`{kind}`", "OpenVINO int8, benchmark_app `-hint throughput`", acc["ov"],
                str(os.cpu_count()), "", f"{all_cores:.1f}")
            for name, run, a in [("OpenVINO int8, Python", ov_int8, acc["ov"]),
                                 ("onnxruntime int8 (QDQ), Python", ort_int8, acc["ort"])]:
                row(f"`{kind}`", name, a, "1", f"{python_timing(run, x, 1):.1f}",
                    f"{python_timing(run, x, 64):.1f}")
    lines += ["", f"Images: the first {IMAGES} of {args.data} (t10k); accuracy on all "
              f"{len(labels)}; calibration on the first {CALIBRATION} training images."]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
