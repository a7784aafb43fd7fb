#!/bin/sh
# Installs what building, running and testing this worker needs. Idempotent: every
# step first checks whether its piece is already present, so a second run is fast.
#
#   sh scripts/setup.sh          # npm packages, wasm32 target, worker-build, wasm-bindgen
#   sh scripts/setup.sh --test   # the above, plus rustfmt, clippy, Chromium and the third-party
#                                # Mercure clients (PyPI, crates.io) for the tests
set -eu

WORKER_BUILD_VERSION=0.8.7

cd "$(dirname "$0")/.."

with_test=0
for arg in "$@"; do
    case "$arg" in
        --test) with_test=1 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

. scripts/cargo-path.sh

say() { printf 'setup: %s\n' "$*"; }
need() {
    command -v "$1" >/dev/null 2>&1 || { echo "setup.sh: '$1' is required but not installed" >&2; exit 1; }
}
# First x.y.z in a tool's --version output ("" when the tool is missing or fails).
version_of() {
    "$@" 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1 || true
}

# 1. npm packages (wrangler, playwright-core)
need npm
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (npm ci)"
    npm ci
else
    say "npm packages up to date"
fi

# 2. Rust standard library for the wasm target
need rustup
if rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
    say "rust target wasm32-unknown-unknown present"
else
    say "installing rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

# 3. worker-build, pinned to the version matching the worker crate
need cargo
have="$(version_of worker-build --version)"
if [ "$have" = "$WORKER_BUILD_VERSION" ]; then
    say "worker-build $have present"
else
    say "installing worker-build $WORKER_BUILD_VERSION (found: ${have:-none}; takes a few minutes)"
    cargo install --locked "worker-build@$WORKER_BUILD_VERSION"
fi

# 4. wasm-bindgen CLI, exactly the wasm-bindgen version in Cargo.lock.
#    (--locked fails for this crate with the registry copy; install without it.)
want="$(awk '
    $0 == "name = \"wasm-bindgen\"" { hit = 1; next }
    hit && /^version = / { gsub(/"/, "", $3); print $3; exit }
    /^\[\[package\]\]/ { hit = 0 }
' Cargo.lock 2>/dev/null || true)"
if [ -z "$want" ]; then
    echo "setup.sh: cannot find the wasm-bindgen version in Cargo.lock" >&2
    exit 1
fi
have="$(version_of wasm-bindgen --version)"
if [ "$have" = "$want" ]; then
    say "wasm-bindgen $have present"
else
    say "installing wasm-bindgen-cli $want (found: ${have:-none}; takes a few minutes)"
    cargo install --force "wasm-bindgen-cli@$want"
fi

# 5. rustfmt and clippy, which the test command runs (part of rustup's default profile,
#    but a minimal toolchain lacks them)
if [ "$with_test" = 1 ]; then
    for pair in fmt:rustfmt clippy:clippy; do
        subcommand="${pair%%:*}"
        component="${pair#*:}"
        if cargo "$subcommand" --version >/dev/null 2>&1; then
            say "$component present"
        else
            say "installing rust component $component"
            rustup component add "$component"
        fi
    done
fi

# 6. Chromium for the browser tests (Debian package; playwright cannot download browsers here)
if [ "$with_test" = 1 ]; then
    if [ -x /usr/bin/chromium ]; then
        say "chromium present"
    else
        say "installing chromium (apt-get)"
        if [ "$(id -u)" = 0 ]; then
            apt-get update && apt-get install -y chromium
        else
            need sudo
            sudo apt-get update && sudo apt-get install -y chromium
        fi
    fi
fi

# 7. Third-party Mercure client libraries from PyPI (tests/clients/requirements.txt) in a
#    virtual environment of their own, target/clients/venv; reinstalled when the
#    requirements change.
if [ "$with_test" = 1 ]; then
    need python3
    venv=target/clients/venv
    stamp="$venv/.requirements-installed"
    if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ ! tests/clients/requirements.txt -nt "$stamp" ]; then
        say "python mercure clients present"
    else
        say "installing python mercure clients (pip, into $venv)"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
        touch "$stamp"
    fi
fi

# 8. The `mercure` crate (crates.io) behind a small driver, tests/clients/mercure-rs, built
#    into target/clients (cargo rebuilds only what changed).
if [ "$with_test" = 1 ]; then
    if [ -x target/clients/release/mercure-rs-driver ] \
        && [ -z "$(find tests/clients/mercure-rs -newer target/clients/release/mercure-rs-driver -type f)" ]; then
        say "mercure-rs-driver present"
    else
        say "building mercure-rs-driver (the mercure crate; a minute the first time)"
        CARGO_TARGET_DIR="$(pwd)/target/clients" cargo build --quiet --release --locked \
            --manifest-path tests/clients/mercure-rs/Cargo.toml
    fi
fi

say "done"
