#!/usr/bin/env python3
"""The models onnxruntime-web runs in scripts/web.sh bench, written into OUT: the shipped
`edge.onnx` (float) and its int8 QDQ version, made by onnxruntime's `quantize_static` with
the recipe of benches/peers/int8.py (per-channel symmetric i8 weights, u8 activations,
min-max calibration on the first 2,048 training images). Needs onnxruntime, onnx and numpy
(benches/web/requirements.txt); web.sh runs it in a virtual environment."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benches" / "peers"))
import int8  # noqa: E402  (benches/peers/int8.py: the quantization recipe)


def main():
    out = Path(sys.argv[1])
    data = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    out.mkdir(parents=True, exist_ok=True)
    float_path = out / "edge.onnx"
    int8_path = out / "edge-int8.onnx"
    shutil.copyfile(ROOT / "models" / "edge.onnx", float_path)
    if not int8_path.exists() or int8_path.stat().st_mtime < float_path.stat().st_mtime:
        train = int8.idx_images(data, "train-images-idx3-ubyte")
        int8.quantize(float_path, int8_path, train)
    print(f"models for onnxruntime-web in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
