#!/usr/bin/env python3
"""Checks an exported ONNX file against the wider ecosystem: the official ONNX checker,
then onnxruntime's logits against burn's (from `trainer eval --logits`).

    python3 -m venv /tmp/onnx-venv && /tmp/onnx-venv/bin/pip install onnx onnxruntime numpy
    trainer export --checkpoint runs/edge --onnx /tmp/edge.onnx
    trainer eval --checkpoint runs/edge --limit 1000 --logits /tmp/edge-logits.csv
    /tmp/onnx-venv/bin/python scripts/check_onnx.py /tmp/edge.onnx /tmp/edge-logits.csv

Exit code 0 when the checker passes, the logits agree within --tolerance and every top-1
class agrees; 1 otherwise.
"""
import argparse
import gzip
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def test_images(data_dir: str, count: int) -> np.ndarray:
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                raw = f.read()
            images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
            return images[:count]
    sys.exit(f"error: no t10k-images-idx3-ubyte[.gz] in {data_dir}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx_file")
    p.add_argument("logits_csv", help="burn's logits: `trainer eval --logits FILE` on the test set")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args()

    model = onnx.load(args.onnx_file)
    onnx.checker.check_model(model, full_check=True)
    meta = {e.key: e.value for e in model.metadata_props}
    print(f"checker: ok (ir {model.ir_version}, opset {model.opset_import[0].version}, "
          f"producer {model.producer_name} {model.producer_version}, model {meta.get('model_kind')})")

    reference = np.loadtxt(args.logits_csv, delimiter=",", skiprows=1, dtype=np.float64)
    labels, burn_logits = reference[:, 0].astype(int), reference[:, 1:].astype(np.float32)
    scale = float(meta.get("input_scale", 1 / 255))
    images = test_images(args.data, len(labels)).astype(np.float32)[:, None, :, :] * scale

    session = ort.InferenceSession(args.onnx_file, providers=["CPUExecutionProvider"])
    ort_logits = session.run(["logits"], {"image": images})[0]
    worst = float(np.abs(ort_logits - burn_logits).max())
    agree = int((ort_logits.argmax(1) == burn_logits.argmax(1)).sum())
    accuracy = float((ort_logits.argmax(1) == labels).mean())
    print(f"onnxruntime {ort.__version__}: {len(labels)} images, max |logit difference| {worst:.2e}, "
          f"top-1 agreement {agree}/{len(labels)}, accuracy {accuracy:.4f}")
    ok = worst <= args.tolerance and agree == len(labels)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
