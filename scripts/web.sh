#!/usr/bin/env bash
# The WebAssembly engine and its page, in one entry point:
#   scripts/web.sh build          the two .wasm builds (SIMD and not) and the page, in target/web/www
#   scripts/web.sh serve [PORT]   build, then serve the page on http://localhost:PORT (8000)
#   scripts/web.sh test           build, write the native engine's answers (target/web/fixture),
#                                 then node --test: the .wasm against them bit for bit, and the
#                                 page in headless Chromium (installs what is missing: the
#                                 wasm32 target, Chromium, the npm packages of runtime/wasm)
#   scripts/web.sh bench [N]      one line per path, `NAME us_per_image=X`, on N test images
#                                 (300): our .wasm with and without SIMD and onnxruntime-web
#                                 (int8 QDQ and float ONNX) in Node, one thread, and the
#                                 native engine (benches/web/, benches/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
www="$root/target/web/www"
fixture="$root/target/web/fixture"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

build() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        echo "adding the Rust target wasm32-unknown-unknown" >&2
        rustup target add wasm32-unknown-unknown
    fi
    (
        cd runtime/wasm
        cargo build -q --release --target wasm32-unknown-unknown --target-dir "$root/target/wasm-scalar"
        RUSTFLAGS="-C target-feature=+simd128" \
            cargo build -q --release --target wasm32-unknown-unknown --target-dir "$root/target/wasm-simd"
    )
    mkdir -p "$www"
    cp target/wasm-scalar/wasm32-unknown-unknown/release/fmnist_wasm.wasm "$www/fmnist.wasm"
    cp target/wasm-simd/wasm32-unknown-unknown/release/fmnist_wasm.wasm "$www/fmnist-simd.wasm"
    cp runtime/wasm/www/*.html runtime/wasm/www/*.js runtime/wasm/www/*.css "$www/"
    echo "built $www ($(stat -c %s "$www/fmnist-simd.wasm") bytes with SIMD, $(stat -c %s "$www/fmnist.wasm") without)" >&2
}

fixture() {
    cargo run -q -p fmnist-runtime --features image --example web_fixture -- "$fixture" "${1:-300}"
}

npm_ci() {
    # `npm ci` from the committed lockfile, once per change of it.
    local dir="$1"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

case "${1:-}" in
    build)
        build
        ;;
    serve)
        build
        port="${2:-8000}"
        echo "serving http://localhost:$port/ (Ctrl-C stops)" >&2
        exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$www"
        ;;
    test)
        command -v chromium >/dev/null || {
            echo "installing chromium" >&2
            $sudo apt-get update -qq
            $sudo apt-get install -y -qq --no-install-recommends chromium
        }
        build
        fixture 300
        npm_ci runtime/wasm
        FMNIST_WEB_DIR="$www" FMNIST_WEB_FIXTURE="$fixture" node --test runtime/wasm/tests/
        ;;
    bench)
        build
        count="${2:-300}"
        cargo run -q --release -p fmnist-runtime --features image --example web_fixture -- "$fixture" "$count" --bench
        npm_ci benches/web
        venv="$root/target/web/venv"
        if [ ! -x "$venv/bin/python" ]; then
            python3 -m venv "$venv"
            "$venv/bin/pip" install -q -r benches/web/requirements.txt
        fi
        "$venv/bin/python" benches/web/quantize.py "$root/target/web/models"
        FMNIST_WEB_DIR="$www" FMNIST_WEB_FIXTURE="$fixture" FMNIST_WEB_MODELS="$root/target/web/models" \
            node benches/web/bench.mjs
        ;;
    *)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
