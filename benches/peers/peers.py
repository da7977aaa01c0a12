#!/usr/bin/env python3
"""The tools users would pick instead, on the same models and images as
`cargo bench --bench inference`: onnxruntime (1 and 2 threads) and PyTorch eager (CPU),
batch 1 and 256. Writes a Markdown table (stdout and --out).

The PyTorch model is built from the ONNX file itself (Conv, Relu, MaxPool, Flatten, Gemm,
the only operators the exporter writes), so both tools run the very same weights; the
script checks that their logits agree before timing anything.

Each measurement runs in a fresh Python process, so its peak RSS (interpreter, numpy,
the library, the model, 256 images) is reported too; for the onnxruntime rows it is
onnxruntime alone, for the PyTorch rows PyTorch plus the onnxruntime reference run.

    python3 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install -r benches/peers/requirements.txt
    /tmp/peers-venv/bin/python benches/peers/peers.py --out benches/peers/results.md
"""

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BATCHES = (1, 256)


def images(data_dir, count=256):
    """The first `count` test images as uint8 [count, 784], or generated ones."""
    import numpy as np

    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        path = Path(data_dir) / name
        if path.exists():
            raw = (gzip.open if name.endswith(".gz") else open)(path, "rb").read()
            pixels = np.frombuffer(raw[16:], dtype=np.uint8).reshape(-1, 784)
            return pixels[:count].copy(), str(path)
    index = np.arange(count * 784, dtype=np.uint64)
    return ((index * 2654435761) >> 7).astype(np.uint8).reshape(count, 784), "generated"


def as_input(pixels, scale):
    import numpy as np

    return (pixels.astype(np.float32) * np.float32(scale)).reshape(-1, 1, 28, 28)


def torch_model(onnx_path):
    """An eager nn.Sequential with the ONNX file's operators and weights."""
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(onnx_path).graph
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    layers = []
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            pads = attrs.get("pads", [0, 0, 0, 0])
            conv = torch.nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), padding=pads[0])
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(weights[node.input[2]])
            layers.append(conv)
        elif node.op_type == "Relu":
            layers.append(torch.nn.ReLU())
        elif node.op_type == "MaxPool":
            layers.append(torch.nn.MaxPool2d(attrs["kernel_shape"][0], attrs["strides"][0]))
        elif node.op_type == "Flatten":
            layers.append(torch.nn.Flatten())
        elif node.op_type == "Gemm":
            w = weights[node.input[1]]
            linear = torch.nn.Linear(w.shape[1], w.shape[0])
            linear.weight.data.copy_(w)
            linear.bias.data.copy_(weights[node.input[2]])
            layers.append(linear)
        else:
            raise SystemExit(f"{onnx_path}: operator {node.op_type} is not one the exporter writes")
    return torch.nn.Sequential(*layers).eval()


def runner(tool, onnx_path, threads):
    """A function from a float [n,1,28,28] array to logits."""
    if tool == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    import torch

    torch.set_num_threads(threads)
    model = torch_model(onnx_path)

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def seconds_per_call(run, x, budget):
    """Median over rounds of the mean time of one call (after a warm-up)."""
    for _ in range(3):
        run(x)
    start = time.perf_counter()
    run(x)
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(1, int(budget / 10 / once))
    rounds = []
    for _ in range(10):
        start = time.perf_counter()
        for _ in range(calls):
            run(x)
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def one(args):
    """Child process: one tool, model and thread count; prints JSON."""
    import numpy as np

    onnx_path = Path(args.one_model)
    scale = 1.0 / 255.0
    pixels, source = images(args.data)
    run = runner(args.one_tool, onnx_path, args.one_threads)
    x = as_input(pixels, scale)
    # Same graph, same answers: compare with onnxruntime before timing.
    reference = runner("onnxruntime", onnx_path, 1)(x)
    logits = run(x)
    agree = float(np.mean(logits.argmax(1) == reference.argmax(1)))
    worst = float(np.max(np.abs(logits - reference)))
    if agree < 0.99 or worst > 1e-2:
        raise SystemExit(f"{args.one_tool} disagrees with onnxruntime: {agree=}, {worst=}")
    result = {"source": source, "max_abs_diff": worst}
    for batch in BATCHES:
        result[f"batch{batch}"] = seconds_per_call(run, x[:batch], args.seconds)
    result["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "edge"], help="kinds in models/")
    parser.add_argument("--data", default=os.environ.get("FMNIST_DATA", "/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--seconds", type=float, default=2.0, help="timing budget per measurement")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--one-tool", help=argparse.SUPPRESS)
    parser.add_argument("--one-model", help=argparse.SUPPRESS)
    parser.add_argument("--one-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_tool:
        return one(args)

    # Versions without importing: the children's peak RSS would inherit the parent's
    # (Linux keeps the high-water mark across exec).
    from importlib.metadata import version

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [
        f"Machine: {cpu}, {os.cpu_count()} cores; onnxruntime {version('onnxruntime')}, "
        f"torch {version('torch')}, Python {sys.version.split()[0]}.",
        f"Command: `python benches/peers/peers.py --seconds {args.seconds}`",
        "",
        "| model | tool | threads | batch 1: µs/image | batch 256: µs/image | images/s (256) | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in args.models:
        onnx_path = ROOT / "models" / f"{kind}.onnx"
        for tool in ("onnxruntime", "pytorch"):
            for threads in (1, 2):
                child = subprocess.run(
                    [sys.executable, __file__, "--data", args.data, "--seconds", str(args.seconds),
                     "--one-tool", tool, "--one-model", str(onnx_path), "--one-threads", str(threads)],
                    capture_output=True, text=True,
                )
                if child.returncode != 0:
                    raise SystemExit(f"{tool} on {onnx_path} failed:\n{child.stderr}")
                r = json.loads(child.stdout.strip().splitlines()[-1])
                b1, b256 = r["batch1"] * 1e6, r["batch256"] * 1e6 / 256
                row = (f"| {kind} | {tool} | {threads} | {b1:.1f} | {b256:.1f} | {1e6 / b256:,.0f} | "
                       f"{r['peak_rss_kib'] / 1024:.0f} MiB |")
                print(row, file=sys.stderr)
                lines.append(row)
    lines.append("")
    lines.append(f"Images: {r['source']}.")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(table)
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
