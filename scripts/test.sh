#!/usr/bin/env bash
# The project's test command (README): installs the real dataset when it is missing, then
# runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

data="${FMNIST_DATA:-/usr/share/datasets/fashion-mnist}"
if [ ! -f "$data/t10k-labels-idx1-ubyte.gz" ] && [ ! -f "$data/t10k-labels-idx1-ubyte" ]; then
    echo "Fashion-MNIST not found in $data: installing dataset-fashion-mnist" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq dataset-fashion-mnist
fi

cargo test --workspace "$@"
