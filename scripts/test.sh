#!/bin/sh
# The whole test suite: set-up, Rust unit tests, one worker build, then the
# end-to-end and browser tests (node --test, one file at a time: each file starts
# its own wrangler dev server, and the machine has 2 cores).
# Exits non-zero when any step fails; ends with the runners' summary lines.
set -eu
cd "$(dirname "$0")/.."

. scripts/cargo-path.sh

logs="$(mktemp -d "${TMPDIR:-/tmp}/sse-edge-test.XXXXXX")"
trap 'rm -rf "$logs"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n==> %s\n' "$*"; }

# show_lines TITLE LOG REGEX: the runner's summary lines from its log
show_lines() {
    [ -f "$2" ] || return 0
    echo "$1:"
    if grep -qE "$3" "$2"; then
        grep -E "$3" "$2" | sed 's/^/  /'
    else
        echo "  (no summary lines)"
    fi
}

summary() {
    printf '\n==> summary\n'
    show_lines "cargo test" "$logs/cargo.log" '^test result: '
    show_lines "node --test" "$logs/node.log" '^(ℹ|#) (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) '
    show_lines "node --test, the hub's tree forced" "$logs/node-tree.log" '^(ℹ|#) (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) '
    show_lines "node --test, HIBERNATE=1" "$logs/node-hibernate.log" '^(ℹ|#) (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) '
}

# run NAME CMD...: runs CMD, shows and keeps its output, stops the script on failure.
run() {
    name="$1"; shift
    # (no pipefail in POSIX sh: the status travels through a file)
    { rc=0; "$@" 2>&1 || rc=$?; echo "$rc" >"$logs/$name.rc"; } | tee "$logs/$name.log"
    rc="$(cat "$logs/$name.rc")"
    if [ "$rc" != 0 ]; then
        summary
        printf '\n==> FAILED: %s (exit %s)\n' "$*" "$rc" >&2
        exit 1
    fi
}

step "set-up: sh scripts/setup.sh --test"
run setup sh scripts/setup.sh --test

step "Rust style: cargo fmt --check, cargo clippy"
run fmt cargo fmt --all --check
run clippy cargo clippy --workspace --all-targets --quiet -- -D warnings

step "Rust tests: cargo test --workspace"
run cargo cargo test --workspace

step "build: SSE_EDGE_TEST_BUILD=1 sh scripts/build.sh (a test build)"
run build env SSE_EDGE_TEST_BUILD=1 sh scripts/build.sh

step "end-to-end and browser tests: node --test"
# tests/support/server.mjs starts wrangler dev with SSE_EDGE_SKIP_BUILD=1, so the
# build just made is reused instead of being rebuilt for every server.
# Every *.test.mjs under tests/ (explicit paths: node 20 and 22 read a directory
# argument differently).
test_files="$(find tests -name '*.test.mjs' -type f | sort)"
if [ -z "$test_files" ]; then
    echo "no tests/**/*.test.mjs files found" >&2
    exit 1
fi
# shellcheck disable=SC2086  # paths in tests/ have no spaces
run node node --test --test-concurrency=1 --test-reporter=spec $test_files

step "the Mercure suites again, the hub's tree forced: LISTENERS_PER_OBJECT=1 FANOUT=2"
# Every subscriber past the first lands on another object of the hub's tree; the
# third-party clients (tests/e2e/mercure-clients.test.mjs) are among these files.
# mercure-tree.test.mjs sets its own tree, so it ran as it is above.
hub_files="$(find tests/e2e -name 'mercure-*.test.mjs' ! -name 'mercure-tree.test.mjs' -type f | sort)"
# shellcheck disable=SC2086
run node-tree env SSE_EDGE_TEST_VARS="LISTENERS_PER_OBJECT=1 FANOUT=2" \
    node --test --test-concurrency=1 --test-reporter=spec $hub_files

step "the channel and Mercure suites and the browser tests again, objects sleeping: HIBERNATE=1"
# The Worker holds every stream and the objects sleep between events: every guarantee
# the suites check must hold the same way. Files that set HIBERNATE themselves ran
# above; the deploy dry run does not depend on it.
hibernate_files="$(find tests -name '*.test.mjs' -type f ! -name 'hibernation*.test.mjs' ! -name 'deploy.test.mjs' | sort)"
# shellcheck disable=SC2086
run node-hibernate env SSE_EDGE_TEST_VARS="HIBERNATE=1" \
    node --test --test-concurrency=1 --test-reporter=spec $hibernate_files

summary
printf '\n==> all tests passed\n'
