#!/bin/sh
# Builds the worker into build/worker (what wrangler.toml's `main` points at).
# wrangler runs this before `wrangler dev` and `wrangler deploy`. Tests that start many
# dev servers set SSE_EDGE_SKIP_BUILD=1 after building once. SSE_EDGE_TEST_BUILD=1 makes
# a test build (the `test-faults` feature: a way to make an object fail), which
# scripts/test.sh builds and nothing deploys.
set -eu
cd "$(dirname "$0")/.."
if [ "${SSE_EDGE_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  exit 0
fi
. scripts/cargo-path.sh
for tool in worker-build wasm-bindgen; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool is not installed: run sh scripts/setup.sh" >&2; exit 1; }
done
# worker-build would download wasm-bindgen and wasm-opt; use the installed wasm-bindgen
# (scripts/setup.sh pins it to Cargo.lock's version) and skip wasm-opt.
WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_BINDGEN_BIN
if [ "${SSE_EDGE_TEST_BUILD:-}" = 1 ]; then
  exec worker-build --release --no-opt --features test-faults
fi
exec worker-build --release --no-opt
