#!/usr/bin/env python3
"""PyTorch training speed on the "seed CNN" Fashion-MNIST recipe, on the CPU or a GPU.

Reference point for the Rust (burn) trainer: same model, optimizer, batch size
and training subset. See README.md in this folder for install and usage.
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
from torch import nn

TRAIN_IMAGES = 59_000
BATCH = 300
BATCHES_PER_EPOCH = -(-TRAIN_IMAGES // BATCH)  # 197 (196 full + one of 200)
WARMUP = 3
PARAMS = 25_290


def read_idx(data_dir: str, stem: str) -> np.ndarray:
    """Read an IDX file `stem` (e.g. train-images-idx3-ubyte), gzipped or raw."""
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            break
    else:
        sys.exit(f"error: {stem}[.gz] not found in {data_dir}")
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        sys.exit(f"error: {path}: bad IDX magic {magic:#010x}")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def seed_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 10, 5),   # 28 -> 24
        nn.ReLU(),
        nn.Conv2d(10, 20, 5),  # 24 -> 20
        nn.ReLU(),
        nn.MaxPool2d(2),       # 20 -> 10
        nn.Flatten(),
        nn.Linear(20 * 10 * 10, 10),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="folder with the Fashion-MNIST IDX files (gzipped or raw)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (e.g. 1 or 2)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batches", type=int, default=None,
                   help="stop after N batches per epoch (quick measurement)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu",
                   help="cpu, or cuda: batches are copied from host memory each step, as "
                        "the Rust trainer does, and each step is timed to its end "
                        "(torch.cuda.synchronize)")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: torch sees no CUDA device")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    images = read_idx(args.data, "train-images-idx3-ubyte")[:TRAIN_IMAGES]
    labels = read_idx(args.data, "train-labels-idx1-ubyte")[:TRAIN_IMAGES]
    assert images.shape == (TRAIN_IMAGES, 28, 28), images.shape
    x_all = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # [N,1,28,28]
    y_all = torch.from_numpy(labels.astype(np.int64))

    model = seed_cnn().to(device)
    n_params = sum(t.numel() for t in model.parameters())
    assert n_params == PARAMS, f"expected {PARAMS} parameters, got {n_params}"
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()

    n_batches = BATCHES_PER_EPOCH if args.batches is None else min(args.batches, BATCHES_PER_EPOCH)
    if n_batches <= WARMUP:
        sys.exit(f"error: need more than {WARMUP} batches (warm-up) to measure")

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {where}, threads={torch.get_num_threads()}, params={n_params}, "
          f"batch={BATCH}, batches/epoch={n_batches} of {BATCHES_PER_EPOCH}")

    timed = []  # seconds per batch, excluding the first WARMUP batches of the run
    model.train()
    for epoch in range(1, args.epochs + 1):
        perm = torch.from_numpy(rng.permutation(TRAIN_IMAGES))
        correct = seen = 0
        loss_sum = 0.0
        t_epoch = time.perf_counter()
        for b in range(n_batches):
            t0 = time.perf_counter()
            idx = perm[b * BATCH:(b + 1) * BATCH]
            x, y = x_all[idx].to(device), y_all[idx].to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            if epoch > 1 or b >= WARMUP:
                timed.append(dt)
            with torch.no_grad():
                correct += (logits.argmax(1) == y).sum().item()
                seen += y.numel()
                loss_sum += loss.item() * y.numel()
        wall = time.perf_counter() - t_epoch
        print(f"epoch {epoch}: {n_batches} batches in {wall:.2f}s, "
              f"loss {loss_sum / seen:.4f}, train accuracy {100.0 * correct / seen:.2f}%")

    s_per_batch = sum(timed) / len(timed)
    s_per_epoch = s_per_batch * BATCHES_PER_EPOCH
    print(f"seconds per batch: {s_per_batch:.4f} (mean of {len(timed)} batches after {WARMUP}-batch warm-up)")
    print(f"seconds per epoch (extrapolated, {BATCHES_PER_EPOCH} batches of {BATCH}): {s_per_epoch:.1f}")
    print(f"train accuracy (last epoch, running): {100.0 * correct / seen:.2f}%")
    print(f"RESULT device={args.device} threads={torch.get_num_threads()} s_per_batch={s_per_batch:.4f} "
          f"s_per_epoch={s_per_epoch:.1f} train_acc={correct / seen:.4f} torch={torch.__version__}")


if __name__ == "__main__":
    main()
