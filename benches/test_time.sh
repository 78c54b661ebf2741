#!/usr/bin/env bash
# How long `cargo test --workspace` takes from an empty target directory, for each commit given,
# one after the other on this machine (docs/ARCHITECTURE.md, "Tests").
#
#   benches/test_time.sh f6fe865 5ab98d6 a4f12bb
#
# Each commit is checked out in its own `git worktree` under a temporary directory, built and
# tested with its own CARGO_TARGET_DIR, then removed. Prints one line per commit: wall seconds, the
# exit status of cargo test (run with --no-fail-fast, so that every binary runs), how many
# integration-test binaries ran, and the tests that failed. Nothing else should run
# meanwhile: the figures are only comparable within one run of this script.
set -uo pipefail
(($#)) || { echo "usage: $0 COMMIT..." >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/turnstile-test-time.XXXXXX")
trap 'git -C "$repo" worktree prune; rm -rf "$work"' EXIT
for commit in "$@"; do
    tree="$work/tree-$commit"
    git -C "$repo" worktree add --detach -f "$tree" "$commit" >/dev/null
    started=$(date +%s)
    # --no-fail-fast: a failing test binary does not cut the run short (and the time with it).
    (cd "$tree" && CARGO_TARGET_DIR="$work/target-$commit" cargo test --workspace --no-fail-fast >"$work/$commit.log" 2>&1)
    status=$?
    seconds=$(($(date +%s) - started))
    binaries=$(grep -c "Running tests/" "$work/$commit.log")
    echo "$commit: ${seconds} s, cargo test exit $status, integration-test binaries: $binaries"
    if ((status != 0)); then
        cp "$work/$commit.log" "${TMPDIR:-/tmp}/test-time-$commit.log"
        grep -E "^test .* FAILED$|^    [a-z_:]+$" "$work/$commit.log" | sort -u | sed 's/^/  failed: /'
        echo "  the whole output: ${TMPDIR:-/tmp}/test-time-$commit.log"
    fi
    rm -rf "$work/target-$commit"
    git -C "$repo" worktree remove --force "$tree"
done
