#!/usr/bin/env bash
# A/B of two release binaries (or two configs) on one `turnstile bench` workload, alternately, on a
# fresh single node each run; prints one line per run and keeps the JSON summaries.
#
#   benches/ab.sh OLD_BINARY NEW_BINARY -- --reads-per-write 0 --hot-event --confirm-percent 100
#   CONFIG_A=a.toml CONFIG_B=b.toml benches/ab.sh target/release/turnstile target/release/turnstile -- ...
#
# Settings (environment): ROUNDS (2), SECONDS_PER_RUN (20), CONCURRENCY (64), OUT_DIR
# (target/ab), CONFIG_A / CONFIG_B (default: cluster.toml with a private port, no per-buyer rate
# limit, log level warn; any [storage] or other key may differ between the two), METRICS (0; 1
# saves the node's /metrics after each run as OUT_DIR/SIDE-ROUND.metrics, e.g. to compare
# turnstile_event_request_seconds by request with turnstile_log_commit_seconds).
# Build an old binary with e.g. `git worktree add /tmp/old <commit>` and
# `cargo build --release -p turnstile` there, with a target dir of its own.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 OLD_BINARY NEW_BINARY [-- bench flags]" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
A=$(realpath "$1"); B=$(realpath "$2"); shift 2
[[ ${1:-} == "--" ]] && shift
ROUNDS=${ROUNDS:-2}; SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}; CONCURRENCY=${CONCURRENCY:-64}
OUT_DIR=${OUT_DIR:-$REPO/target/ab}; mkdir -p "$OUT_DIR"
PORT=${PORT:-50581}; METRICS_PORT=${METRICS_PORT:-9584}
private_config() { # source, destination
    sed -e "s/127\.0\.0\.1:50051/127.0.0.1:$PORT/g" -e "s/127\.0\.0\.1:9464/127.0.0.1:$METRICS_PORT/g" \
        -e "s/^buyer_requests_per_second *=.*/buyer_requests_per_second = 0/" \
        -e "s/^level *=.*/level = \"warn\"/" "$1" >"$2"
}
private_config "${CONFIG_A:-$REPO/cluster.toml}" "$OUT_DIR/a.toml"
private_config "${CONFIG_B:-$REPO/cluster.toml}" "$OUT_DIR/b.toml"
# Copies, so a rebuild during the run swaps nothing.
cp "$A" "$OUT_DIR/a.bin"; cp "$B" "$OUT_DIR/b.bin"
SERVER_PID=""
trap '[[ -n $SERVER_PID ]] && kill $SERVER_PID 2>/dev/null; true' EXIT
for round in $(seq "$ROUNDS"); do
    for side in a b; do
        bin="$OUT_DIR/$side.bin"; config="$OUT_DIR/$side.toml"; data="$OUT_DIR/data"
        rm -rf "$data"
        "$bin" serve --config "$config" --data-dir "$data" >"$OUT_DIR/server-$side-$round.log" 2>&1 &
        SERVER_PID=$!
        up=0
        for _ in $(seq 150); do
            "$bin" status --config "$config" >/dev/null 2>&1 && { up=1; break; }
            sleep 0.2
        done
        [[ $up == 1 ]] || { echo "the node did not come up; see $OUT_DIR/server-$side-$round.log" >&2; exit 1; }
        cpu_before=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
        "$bin" bench --config "$config" --concurrency "$CONCURRENCY" --duration-seconds "$SECONDS_PER_RUN" \
            --quiet --json "$OUT_DIR/$side-$round.json" "$@" >"$OUT_DIR/$side-$round.txt" 2>&1
        cpu_after=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
        log=$("$bin" status --config "$config" | sed -n 's/^log commits *//p')
        if [[ ${METRICS:-0} == 1 ]]; then
            curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$OUT_DIR/$side-$round.metrics" || true
        fi
        kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
        rm -rf "$data"
        python3 - "$OUT_DIR/$side-$round.json" "$side" "$round" "$cpu_before" "$cpu_after" "$log" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
hold = summary["operations"]["hold"]
confirm = summary["operations"].get("confirm", {})
ticks = float(sys.argv[5]) - float(sys.argv[4])
print(f"{sys.argv[2]} round {sys.argv[3]}: holds/s {hold['per_second']:.0f}, confirms/s {confirm.get('per_second', 0):.0f}, "
      f"hold p50 {hold['p50_us'] / 1e3:.2f} ms, p99 {hold['p99_us'] / 1e3:.2f} ms, p99.9 {hold['p999_us'] / 1e3:.1f} ms, "
      f"max {hold['max_us'] / 1e3:.0f} ms; server CPU {ticks / 100:.1f} s; log commits {sys.argv[6]}", flush=True)
PY
    done
done
