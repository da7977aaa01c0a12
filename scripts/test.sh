#!/usr/bin/env bash
# The project's test command (README): installs what the tests need when it is missing
# (the real dataset; for the Cortex-M tests the thumbv7em-none-eabihf Rust target, QEMU's
# ARM system emulator and the ARM GNU toolchain with newlib), then runs every test of the
# workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
packages=()
data="${FMNIST_DATA:-/usr/share/datasets/fashion-mnist}"
if [ ! -f "$data/t10k-labels-idx1-ubyte.gz" ] && [ ! -f "$data/t10k-labels-idx1-ubyte" ]; then
    echo "Fashion-MNIST not found in $data: installing dataset-fashion-mnist" >&2
    packages+=(dataset-fashion-mnist)
fi
command -v qemu-system-arm >/dev/null || packages+=(qemu-system-arm)
command -v arm-none-eabi-gcc >/dev/null || packages+=(gcc-arm-none-eabi)
[ -f /usr/lib/arm-none-eabi/newlib/rdimon.specs ] || packages+=(libnewlib-arm-none-eabi)
if [ ${#packages[@]} -gt 0 ]; then
    echo "installing ${packages[*]}" >&2
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
    echo "adding the Rust target thumbv7em-none-eabihf (Cortex-M4F, M7)" >&2
    rustup target add thumbv7em-none-eabihf
fi

cargo test --workspace "$@"
# The library can be published: its package holds what it needs (the shipped blob for the
# `models` feature) and builds on its own. Offline: the build above fetched its crates.
cargo package -p fmnist-runtime --offline --allow-dirty --quiet
# The engine in WebAssembly against the native one, and its page in headless Chromium
# (installs the wasm32 target, Chromium and the npm packages when missing).
scripts/web.sh test
