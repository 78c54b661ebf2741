#!/usr/bin/env bash
# Starts the three nodes of this example (node-a.toml, node-b.toml, node-c.toml beside this
# script) on this machine and waits. Each node's data goes to data/node-X and its log to
# data/node-X.log, under the directory this is run from. Ctrl-C or SIGTERM stops all three
# cleanly (each gets SIGTERM, finishes its calls in flight and exits).
#
#   docs/examples/three-nodes/start.sh          # from the repository: builds the release binary
#   TURNSTILE_BIN=/usr/local/bin/turnstile start.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -z "${TURNSTILE_BIN:-}" ]]; then
    cargo build --release -p turnstile --manifest-path "$here/../../../Cargo.toml"
    TURNSTILE_BIN="$here/../../../target/release/turnstile"
fi

mkdir -p data
pids=()
names=()
stop() {
    trap - INT TERM
    echo "stopping the nodes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    status=0
    for index in "${!pids[@]}"; do
        code=0
        wait "${pids[$index]}" || code=$?
        echo "${names[$index]} exited with status $code"
        [[ $code -eq 0 ]] || status=$code
    done
    exit "$status"
}
trap stop INT TERM

for node in node-a node-b node-c; do
    "$TURNSTILE_BIN" serve --config "$here/$node.toml" >"data/$node.log" 2>&1 &
    pids+=($!)
    names+=("$node")
    echo "started $node (pid $!, log data/$node.log)"
done

# Each node answers health checks once it serves; `turnstile status` shows its groups' leaders.
for node in node-a node-b node-c; do
    # The first `listen` of the file is [node]'s (the gRPC port).
    address=$(awk -F'"' '/^listen = /{print $2; exit}' "$here/$node.toml")
    for _ in $(seq 1 300); do
        if "$TURNSTILE_BIN" status --server "$address" --config "$here/$node.toml" >/dev/null 2>&1; then
            echo "$node serves on $address"
            break
        fi
        sleep 0.2
    done
done
echo "cluster up; Ctrl-C stops it"
wait "${pids[@]}"
