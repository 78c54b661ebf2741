#!/usr/bin/env bash
# Soak: a release node under steady load for a long time; reports memory growth and p99 drift.
# Not part of CI (gateway/tests/it/soak.rs is the short version there).
#
#   benches/soak.sh                       # 30 minutes
#   TURNSTILE_SOAK_SECONDS=300 benches/soak.sh
#
# Settings (environment): TURNSTILE_SOAK_SECONDS (1800), TURNSTILE_SOAK_CONCURRENCY (16),
# TURNSTILE_SOAK_OUT (target/soak): where the binary copy, the data directory, the server log and
# the JSON summary go.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${TURNSTILE_SOAK_SECONDS:-1800}"
concurrency="${TURNSTILE_SOAK_CONCURRENCY:-16}"
out="${TURNSTILE_SOAK_OUT:-target/soak}"

cargo build --release -p turnstile
rm -rf "$out"
mkdir -p "$out"
# A copy, so a rebuild during the run does not swap the binary under the node.
cp target/release/turnstile "$out/turnstile"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$out/turnstile" serve --config cluster.toml --listen "127.0.0.1:$port" --data-dir "$out/data" \
    >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
done

echo "soak: ${duration} s at concurrency ${concurrency} against 127.0.0.1:${port} (uptime: $(uptime))"
"$out/turnstile" bench --config cluster.toml --server "127.0.0.1:$port" --concurrency "$concurrency" \
    --duration-seconds "$duration" --reads-per-write 20 --confirm-percent 20 --window-seconds 30 \
    --json "$out/soak.json" --quiet
"$out/turnstile" status --config cluster.toml --server "127.0.0.1:$port" | tee "$out/status.txt"
python3 benches/soak_report.py "$out/soak.json"
