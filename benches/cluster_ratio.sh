#!/usr/bin/env bash
# Three nodes against one: what the cluster costs on this machine, in one run.
#
#   benches/cluster_ratio.sh                    # SECONDS=15 CONCURRENCY=64
#   SECONDS=8 BUILD=0 benches/cluster_ratio.sh
#   MODE=storm benches/cluster_ratio.sh         # disk growth and failover of a three-node cluster
#
# Default mode (MODE=ratio). For each workload, a fresh single node (its own data dir) and then a
# fresh three-node cluster (three `turnstile serve --config X --node node-N`, each with its own data
# dir, metrics off, [cluster] shards = SHARDS, replicas = 3) are loaded by `turnstile bench` at
# CONCURRENCY for SECONDS:
#   (a) hold-only:  --hold-only --reads-per-write 0         (16 events, one durable command a write)
#   (b) hot event:  --hot-event --reads-per-write 0 --confirm-percent 100   (hold + confirm, 1 event)
# The bench takes one --server, so the generator talks to node-1 of the cluster; node-1 forwards the
# calls about events whose shard another node leads. The bench creates its own venue and events
# (no --demo). Before each measured run a short warm-up bench (holds and releases over 24 events)
# must pass without an error: that is the readiness check of a cluster (every shard has a leader).
# Measured per run: writes/s (successful holds, confirms and releases per second of the bench's
# summary; the bench's own figure, errors included, is kept in figures.txt), hold p99, and server
# CPU per write: utime + stime of every server process (/proc/PID/stat, threads included) read just
# before and just after the bench, over the successful writes. Targets, three nodes against one:
# writes/s >= 0.5x, CPU per write <= 3x, hold p99 <= 3x.
#
# MODE=storm: a three-node cluster with `[cluster] snapshot_interval_entries = SNAPSHOT_ENTRIES`
# (exit 2 if the server does not know the key yet) takes a hold-only storm of COMMANDS holds in
# several bench runs through node-1 (a short calibration run sizes the others); each node's data
# dir size (du -sb) is taken once FIRST_COMMANDS holds are done and at the end (target: end <= 2x
# the first). Then the leader of the events (the node whose GetNodeStatus reports the most active
# events; only shard leaders run actors) is killed with SIGKILL, and holds are sent on every bench
# event (found with SearchEvents) through a surviving node, in rounds, until each event has taken
# one again: the failover time is the longest of those, from the kill (target < 3 s). The probe is
# curl over HTTP/2 with a hand-encoded HoldSeats, one curl process per round for all events; the
# same round before the kill gives the probe's floor. Details in OUT_DIR/failover-probes.txt.
#
# Environment (defaults in brackets):
#   MODE [ratio]          ratio | storm
#   SECONDS [15]          seconds per measured run (read from the environment; bash counts with it)
#   CONCURRENCY [64]      bench workers
#   SHARDS [64]           [cluster] shards (the default of cluster.toml)
#   BASE_PORT [50251]     the single node listens on BASE_PORT, node-1..3 on BASE_PORT+1..+3
#   OUT_DIR [a new /tmp/turnstile-cluster-ratio.XXXXXX]  results.md, figures and logs (kept)
#   TURNSTILE_BIN         binary to measure (else target/release/turnstile of this repo)
#   BUILD [1]             `cargo build --release -p turnstile` first (0: skip; ignored with TURNSTILE_BIN)
#   KEEP_DATA [0]         keep the servers' data dirs and the copy of the binary at exit
#   SNAPSHOT_ENTRIES [500]  storm: [cluster] snapshot_interval_entries (0: leave the key out, the
#                         baseline without snapshots)
#   COMMANDS [1000000]    storm: holds to make in all
#   FIRST_COMMANDS [100000]  storm: holds after which the first data dir sizes are taken
#   STORM_HOLD_TTL [0]    storm: --hold-ttl-seconds of the bench's events (0: the server's default,
#                         600 s; 30 to 3600 otherwise): a short TTL keeps the live state bounded
#
# The binary is copied into OUT_DIR first, so a concurrent rebuild cannot swap it mid-run. Every
# wait is bounded and every server this script starts is stopped when it exits (also on failure).
# The load generator runs on the same two cores as the servers; other builds running meanwhile
# (counted in figures.txt as busy_*) skew the figures.
# Exit status: 0 when the table was printed (PASS or MISS), 1 on a failure, 2 when MODE=storm and
# the server rejects snapshot_interval_entries.

set -euo pipefail

# SECONDS is a bash special variable: read it from the environment before bash counts with it.
RUN_SECONDS=$(printenv SECONDS || echo 15)
MODE=${MODE:-ratio}
CONCURRENCY=${CONCURRENCY:-64}
SHARDS=${SHARDS:-64}
BASE_PORT=${BASE_PORT:-50251}
BUILD=${BUILD:-1}
KEEP_DATA=${KEEP_DATA:-0}
SNAPSHOT_ENTRIES=${SNAPSHOT_ENTRIES:-500}
COMMANDS=${COMMANDS:-1000000}
FIRST_COMMANDS=${FIRST_COMMANDS:-100000}
STORM_HOLD_TTL=${STORM_HOLD_TTL:-0}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/turnstile-cluster-ratio.XXXXXX")}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK="$OUT_DIR/work"
FIGURES="$OUT_DIR/figures.txt"
RESULTS="$OUT_DIR/results.md"
CLK_TCK=$(getconf CLK_TCK)
SECRET="cluster-ratio-bench-secret-0123456789"
NODES=(node-1 node-2 node-3)
# Seconds a bench may overrun its duration (connections, event creation, summary) before it is
# stopped as hung.
BENCH_GRACE=120

log() { printf '[cluster_ratio %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
fig() { printf '%s=%s\n' "$1" "$2" >>"$FIGURES"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Compiler and linker processes of other builds on the machine (they share the two cores).
# Other builds running (pgrep -x refuses a pattern over 15 characters, so match the names here).
busy() { ps -eo comm= | grep -c -x -E 'rustc|cargo|cc1|cc1plus|ld|ld.lld|mold|clang' || true; }
now_ns() { date +%s%N; }

[[ $MODE == ratio || $MODE == storm ]] || die "MODE must be ratio or storm"
for knob in RUN_SECONDS CONCURRENCY SHARDS BASE_PORT COMMANDS FIRST_COMMANDS; do
    [[ ${!knob} =~ ^[0-9]+$ && ${!knob} -ge 1 ]] || die "$knob must be a positive integer (got '${!knob}')"
done
[[ $SNAPSHOT_ENTRIES =~ ^[0-9]+$ ]] || die "SNAPSHOT_ENTRIES must be a number (got '$SNAPSHOT_ENTRIES')"
[[ $STORM_HOLD_TTL =~ ^[0-9]+$ ]] || die "STORM_HOLD_TTL must be a number (got '$STORM_HOLD_TTL')"
((FIRST_COMMANDS <= COMMANDS)) || die "FIRST_COMMANDS must not exceed COMMANDS"
((BASE_PORT + 3 <= 65535)) || die "BASE_PORT + 3 must be a port"
for tool in curl python3 ss du; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done

port_free() { [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
for port in $(seq "$BASE_PORT" $((BASE_PORT + 3))); do
    port_free "$port" || die "port $port is in use; set BASE_PORT"
done
SINGLE_ADDR="127.0.0.1:$BASE_PORT"
declare -A ADDR=([node-1]="127.0.0.1:$((BASE_PORT + 1))" [node-2]="127.0.0.1:$((BASE_PORT + 2))" [node-3]="127.0.0.1:$((BASE_PORT + 3))")

# --- servers and cleanup ---------------------------------------------------------------------------

declare -A PID=()   # running servers by name (single, node-1, ...)
declare -A LIVE=()  # every server pid this script started and has not reaped yet, for the exit trap

# Stops one of our servers: TERM, then KILL after 10 s, and reaps it (so its pid, which the system
# may hand to another process afterwards, is never signalled again).
stop_pid() { # pid
    local pid=$1
    [[ -n ${LIVE[$pid]:-} ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    wait "$pid" 2>/dev/null || true
    unset "LIVE[$pid]"
}
stop_servers() {
    local name
    for name in "${!PID[@]}"; do
        stop_pid "${PID[$name]}"
    done
    PID=()
}
cleanup() {
    set +e
    local pid
    for pid in "${!LIVE[@]}"; do
        stop_pid "$pid"
    done
    if [[ $KEEP_DATA != 1 ]]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"
: >"$FIGURES"
cd "$OUT_DIR"
log "results and logs in $OUT_DIR"

# --- the binary ------------------------------------------------------------------------------------

if [[ -n ${TURNSTILE_BIN:-} ]]; then
    SOURCE_BIN=$TURNSTILE_BIN
    fig binary "TURNSTILE_BIN=$TURNSTILE_BIN"
else
    SOURCE_BIN="$REPO/target/release/turnstile"
    if [[ $BUILD == 1 ]]; then
        log "cargo build --release -p turnstile (waits for any other build holding the lock)"
        if ! (cd "$REPO" && cargo build --release -p turnstile) >"$OUT_DIR/build.log" 2>&1; then
            [[ -x $SOURCE_BIN ]] || die "build failed, see $OUT_DIR/build.log"
            log "build failed (see $OUT_DIR/build.log); measuring the existing target/release/turnstile"
            fig build "FAILED; the existing binary was measured"
        fi
    fi
    fig binary "target/release/turnstile of $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
        [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] && echo ' + uncommitted changes')"
fi
[[ -x $SOURCE_BIN ]] || die "no executable at $SOURCE_BIN (set TURNSTILE_BIN or BUILD=1)"
BIN="$WORK/turnstile"
cp "$SOURCE_BIN" "$BIN"
fig binary_mtime "$(date -u -r "$SOURCE_BIN" +%Y-%m-%dT%H:%M:%SZ)"
fig binary_sha256 "$(sha256sum "$BIN" | cut -c1-16)"

fig date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
fig mode "$MODE"
fig cpus "$(nproc)"
fig cpu_model "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)"
fig filesystem "$(df -T "$OUT_DIR" | awk 'NR == 2 { print $2 " on " $1 }')"
fig concurrency "$CONCURRENCY"
fig seconds "$RUN_SECONDS"
fig shards "$SHARDS"

# --- configs ---------------------------------------------------------------------------------------

common_config() {
    cat <<EOF
# written by benches/cluster_ratio.sh
[auth]
secret = "$SECRET"

[limits]
# No per-buyer limit: the bench's buyers are few per worker.
buyer_requests_per_second = 0

[log]
level = "warn"
EOF
}
SINGLE_CONFIG="$WORK/single.toml"
{
    cat <<EOF
[node]
id = "node-1"
listen = "$SINGLE_ADDR"
data_dir = "$WORK/data-single"

EOF
    common_config
} >"$SINGLE_CONFIG"

cluster_config() { # extra [cluster] lines
    cat <<EOF
[node]
# What \`turnstile bench\` and \`status\` address unless --server says otherwise.
id = "node-1"
listen = "${ADDR[node-1]}"
data_dir = "$WORK/data-node-1"

EOF
    common_config
    cat <<EOF

[cluster]
secret = "$SECRET-nodes"
shards = $SHARDS
replicas = 3
${1:-}
EOF
    local node
    for node in "${NODES[@]}"; do
        printf '\n[[nodes]]\nid = "%s"\naddress = "%s"\n' "$node" "${ADDR[$node]}"
    done
}
CLUSTER_CONFIG="$WORK/cluster.toml"
cluster_config >"$CLUSTER_CONFIG"

# --- starting, readiness ---------------------------------------------------------------------------

status_of() { # address, config
    timeout 10 "$BIN" status --config "$2" --server "$1" 2>&1
}
events_active() { # address, config: the node's active events (only a shard leader runs actors)
    status_of "$1" "$2" | sed -n 's/^events owned *[0-9]* (\([0-9]*\) active).*/\1/p'
}

# Exits 2 when a node refused the config because it does not know snapshot_interval_entries.
check_unknown_key() { # file
    if grep -q 'unknown field' "$1" && grep -q 'snapshot_interval_entries' "$1"; then
        log "the server does not know [cluster] snapshot_interval_entries yet:"
        grep -m1 'unknown field' "$1" >&2
        log "MODE=storm needs a build with that key (see $1)"
        exit 2
    fi
}

wait_up() { # name, address, config, log
    local name=$1 address=$2 config=$3 server_log=$4
    for _ in $(seq 150); do
        status_of "$address" "$config" >/dev/null && return 0
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            check_unknown_key "$server_log"
            die "$name exited at start; see $server_log"
        fi
        sleep 0.2
    done
    die "$name did not answer GetNodeStatus within 30 s; see $server_log"
}

start_single() { # run name
    local run=$1 data="$WORK/data-single"
    rm -rf "$data"
    env -u RUST_LOG "$BIN" serve --config "$SINGLE_CONFIG" --data-dir "$data" >"$OUT_DIR/server-$run.log" 2>&1 &
    PID[single]=$!
    LIVE[$!]=single
    wait_up single "$SINGLE_ADDR" "$SINGLE_CONFIG" "$OUT_DIR/server-$run.log"
}

start_cluster() { # run name, config
    local run=$1 config=$2 node
    for node in "${NODES[@]}"; do
        rm -rf "$WORK/data-$node"
        env -u RUST_LOG "$BIN" serve --config "$config" --node "$node" --data-dir "$WORK/data-$node" \
            >"$OUT_DIR/server-$run-$node.log" 2>&1 &
        PID[$node]=$!
        LIVE[$!]=$node
    done
    for node in "${NODES[@]}"; do
        wait_up "$node" "${ADDR[$node]}" "$config" "$OUT_DIR/server-$run-$node.log"
    done
}

# A bench of `seconds` against `address`, output in OUT_DIR/NAME.{txt,json}; bounded by `timeout`.
bench() { # name, address, config, seconds, flags...
    local name=$1 address=$2 config=$3 seconds=$4
    shift 4
    timeout --foreground $((seconds + BENCH_GRACE)) "$BIN" bench --config "$config" --server "$address" \
        --concurrency "$CONCURRENCY" --duration-seconds "$seconds" --quiet \
        --json "$OUT_DIR/$name.json" "$@" >"$OUT_DIR/$name.txt" 2>&1
}

# Figures of a bench summary as key=value lines.
summary() { # json file
    python3 - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ops = d.get("operations", {})
writes = [ops[name] for name in ("hold", "confirm", "release") if name in ops]
ok = sum(op["count"] - op["errors"] for op in writes)
errors = sum(op["errors"] for op in writes)
seconds = d["duration_seconds"]
hold = ops.get("hold", {})
confirm = ops.get("confirm", {})
print(f"duration_s={seconds:.2f}")
print(f"writes_ok={ok}")
print(f"write_errors={errors}")
print(f"writes_per_s={ok / seconds:.0f}")
print(f"bench_writes_per_s={d['writes_per_second']:.0f}")
print(f"holds_ok={hold.get('count', 0) - hold.get('errors', 0)}")
print(f"hold_p99_ms={hold.get('p99_us', 0) / 1000:.2f}")
print(f"hold_p50_ms={hold.get('p50_us', 0) / 1000:.2f}")
print(f"confirms_ok={confirm.get('count', 0) - confirm.get('errors', 0)}")
codes = ", ".join(f"{code} {count}" for code, count in sorted(d.get("errors_by_code", {}).items()))
print(f"errors_by_code={codes or 'none'}")
EOF
}

# Until a short bench of holds and releases over 24 events goes through without an error (every
# shard touched has a leader and takes writes), at most 20 tries.
warm_up() { # run name, address, config
    local run=$1 address=$2 config=$3 try
    for try in $(seq 20); do
        if CONCURRENCY=8 bench "warmup-$run" "$address" "$config" 1 --reads-per-write 0 --confirm-percent 0 \
            --events 24 --window-seconds 1; then
            local errors holds
            errors=$(summary "$OUT_DIR/warmup-$run.json" | sed -n 's/^write_errors=//p')
            holds=$(summary "$OUT_DIR/warmup-$run.json" | sed -n 's/^holds_ok=//p')
            if [[ $errors == 0 && $holds -gt 0 ]]; then
                fig "${run}_warmup_tries" "$try"
                return 0
            fi
        fi
        sleep 0.5
    done
    log "warning: $run: the warm-up bench still had errors after 20 tries (see $OUT_DIR/warmup-$run.txt)"
    fig "${run}_warmup_tries" "20, still with errors"
}

cpu_ticks() { # pids...: utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat)
    local total=0 pid fields
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        read -r -a fields < <(sed 's/.*) //' "/proc/$pid/stat")
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

declare -A F=() # figures by run: F[run.key]

# One measured run: fresh servers, warm-up, the bench with CPU read around it, figures, stop.
measure() { # run (one-hold, three-hot, ...), seconds, bench flags...
    local run=$1 seconds=$2 system=${1%%-*}
    shift 2
    local address config pids=() name
    if [[ $system == one ]]; then
        start_single "$run"
        address=$SINGLE_ADDR config=$SINGLE_CONFIG
    else
        start_cluster "$run" "$CLUSTER_CONFIG"
        address=${ADDR[node-1]} config=$CLUSTER_CONFIG
    fi
    warm_up "$run" "$address" "$config"
    declare -A active_before=()
    if [[ $system == three ]]; then
        for name in "${NODES[@]}"; do
            active_before[$name]=$(events_active "${ADDR[$name]}" "$CLUSTER_CONFIG")
        done
    fi
    local names=("${!PID[@]}")
    for name in "${names[@]}"; do pids+=("${PID[$name]}"); done
    # Lines logged before the bench: only those written during it are counted (a cluster warns
    # about its peers while they start).
    declare -A log_lines=()
    local server_log
    for server_log in "$OUT_DIR/server-$run"*.log; do log_lines[$server_log]=$(wc -l <"$server_log"); done
    declare -A node_ticks=()
    for name in "${names[@]}"; do node_ticks[$name]=$(cpu_ticks "${PID[$name]}"); done
    fig "${run}_busy_before" "$(busy)"
    fig "${run}_load_before" "$(loadavg)"
    log "$run: turnstile bench $* against $address for ${seconds} s"
    local ticks_before ticks_after started TIMEFORMAT='%3U %3S'
    ticks_before=$(cpu_ticks "${pids[@]}")
    started=$(now_ns)
    { time bench "$run" "$address" "$config" "$seconds" "$@"; } 2>"$OUT_DIR/$run.client-cpu" ||
        die "$run: turnstile bench failed; see $OUT_DIR/$run.txt"
    ticks_after=$(cpu_ticks "${pids[@]}")
    local split=()
    for name in "${names[@]}"; do
        split+=("$name $(awk -v t=$(($(cpu_ticks "${PID[$name]}") - node_ticks[$name])) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }') s")
    done
    F[$run.cpu_split]=$(printf '%s, ' "${split[@]}")
    F[$run.cpu_split]=${F[$run.cpu_split]%, }
    fig "${run}_server_cpu_by_process" "${F[$run.cpu_split]}"
    fig "${run}_wall_s" "$(awk -v ns=$(($(now_ns) - started)) 'BEGIN { printf "%.2f", ns / 1e9 }')"
    fig "${run}_busy_after" "$(busy)"
    local died=()
    for name in "${!PID[@]}"; do
        kill -0 "${PID[$name]}" 2>/dev/null || died+=("$name")
    done
    if ((${#died[@]})); then
        F[$run.died]="${died[*]}"
        log "warning: $run: ${died[*]} exited during the run (its CPU is not counted)"
    fi
    local key value
    while IFS='=' read -r key value; do
        F[$run.$key]=$value
        fig "${run}_$key" "$value"
    done < <(summary "$OUT_DIR/$run.json")
    F[$run.cpu_s]=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
    F[$run.cpu_us_per_write]=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$CLK_TCK" -v w="${F[$run.writes_ok]}" \
        'BEGIN { if (w > 0) printf "%.1f", t / hz * 1e6 / w; else print "n/a" }')
    F[$run.client_cpu_s]=$(awk '{ printf "%.2f", $1 + $2 }' "$OUT_DIR/$run.client-cpu")
    fig "${run}_server_cpu_s" "${F[$run.cpu_s]}"
    fig "${run}_cpu_us_per_write" "${F[$run.cpu_us_per_write]}"
    fig "${run}_client_cpu_s" "${F[$run.client_cpu_s]}"
    if [[ $system == three ]]; then
        # The leader of the hot event: the node that runs one more active event than before.
        local leaders=()
        for name in "${NODES[@]}"; do
            local after
            after=$(events_active "${ADDR[$name]}" "$CLUSTER_CONFIG")
            fig "${run}_${name}_events_active" "${active_before[$name]:-?} -> ${after:-?}"
            if [[ -n $after && -n ${active_before[$name]:-} ]] && ((after > active_before[$name])); then
                leaders+=("$name")
            fi
        done
        F[$run.leaders]="${leaders[*]:-unknown}"
    fi
    # Warnings and errors the servers logged during the bench (the log level is warn).
    : >"$OUT_DIR/$run.server-warnings.log"
    for server_log in "${!log_lines[@]}"; do
        tail -n +$((log_lines[$server_log] + 1)) "$server_log" | sed "s|^|$(basename "$server_log" .log): |" \
            >>"$OUT_DIR/$run.server-warnings.log"
    done
    F[$run.server_log_lines]=$(grep -c -E '\b(WARN|ERROR)\b' "$OUT_DIR/$run.server-warnings.log" || true)
    fig "${run}_server_log_warn_error_lines_during_bench" "${F[$run.server_log_lines]}"
    stop_servers
    log "$run: ${F[$run.writes_per_s]} writes/s, hold p99 ${F[$run.hold_p99_ms]} ms, ${F[$run.cpu_us_per_write]} us CPU/write, errors: ${F[$run.errors_by_code]}"
}

# The hot event has 200,000 places: a run that confirmed nearly all of them ran into the sell-out,
# so it is repeated for a duration that stays under 150,000 places (as benches/peers.sh does).
measure_workload() { # run, bench flags...
    local run=$1
    shift
    measure "$run" "$RUN_SECONDS" "$@"
    if ((${F[$run.confirms_ok]:-0} > 190000)); then
        local short
        short=$(awk -v c="${F[$run.confirms_ok]}" -v s="${F[$run.duration_s]}" \
            'BEGIN { d = int(150000 / (c / s)); if (d < 3) d = 3; print d }')
        log "$run confirmed ${F[$run.confirms_ok]} places (the event sells out at 200,000); repeating for $short s"
        fig "${run}_repeated" "first run confirmed ${F[$run.confirms_ok]}; repeated for $short s"
        F[$run.note]="sold out in ${RUN_SECONDS} s; measured over $short s"
        measure "$run" "$short" "$@"
    fi
}

ratio() { # one, three: three / one
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || a + 0 == 0) print "n/a"; else printf "%.2f", b / a }'
}
verdict() { # value, op (>=, <=, <), target
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v == "" || v == "n/a") { print "MISS"; exit }
        ok = (op == ">=") ? (v + 0 >= t) : (op == "<=") ? (v + 0 <= t) : (v + 0 < t)
        print ok ? "PASS" : "MISS" }'
}
thousands() { awk -v v="$1" 'BEGIN { if (v !~ /^[0-9]+$/) { print v; exit } s = ""; while (length(v) > 3) { s = "," substr(v, length(v) - 2) s; v = substr(v, 1, length(v) - 3) } print v s }'; }

header() {
    echo "# Turnstile: $1"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($(sed -n 's/^cpu_model=//p' "$FIGURES")), $(sed -n 's/^filesystem=//p' "$FIGURES")"
    echo "binary: $(sed -n 's/^binary=//p' "$FIGURES") (built $(sed -n 's/^binary_mtime=//p' "$FIGURES"))$(
        grep -q '^build=' "$FIGURES" && echo ", cargo build FAILED: the existing binary was measured")"
    echo
}

# --- MODE=ratio --------------------------------------------------------------------------------------

ratio_mode() {
    local -a hold_flags=(--hold-only --reads-per-write 0)
    local -a hot_flags=(--hot-event --reads-per-write 0 --confirm-percent 100)
    measure_workload one-hold "${hold_flags[@]}"
    measure_workload three-hold "${hold_flags[@]}"
    measure_workload one-hot "${hot_flags[@]}"
    measure_workload three-hot "${hot_flags[@]}"

    {
        header "three nodes against one (benches/cluster_ratio.sh)"
        echo "\`turnstile bench\` at concurrency $CONCURRENCY, ${RUN_SECONDS} s per run, fresh servers and data dirs per run."
        echo "Three nodes: shards = $SHARDS, replicas = 3, on 127.0.0.1:$((BASE_PORT + 1))-$((BASE_PORT + 3)); the bench takes one"
        echo "--server, so it loads node-1 only (node-1 forwards calls about events whose shard another node leads)."
        echo "writes/s: successful holds + confirms per second; CPU: utime + stime of all server processes"
        echo "over the bench, per successful write; p99: the bench's hold p99. The bench's duration runs until its"
        echo "last worker stops (about 1 s past SECONDS), on both sides alike."
        echo
        echo "| workload | measure | one node | three nodes | ratio | target | result |"
        echo "| --- | --- | ---: | ---: | ---: | --- | --- |"
        local workload label r
        for workload in hold hot; do
            case $workload in
                hold) label="hold-only" ;;
                hot) label="hot event, hold + confirm" ;;
            esac
            local one="one-$workload" three="three-$workload"
            r=$(ratio "${F[$one.writes_per_s]}" "${F[$three.writes_per_s]}")
            echo "| $label | writes/s | $(thousands "${F[$one.writes_per_s]}") | $(thousands "${F[$three.writes_per_s]}") | ${r}x | >= 0.5x | $(verdict "$r" '>=' 0.5) |"
            r=$(ratio "${F[$one.cpu_us_per_write]}" "${F[$three.cpu_us_per_write]}")
            echo "| $label | server CPU µs/write | ${F[$one.cpu_us_per_write]} | ${F[$three.cpu_us_per_write]} | ${r}x | <= 3x | $(verdict "$r" '<=' 3) |"
            r=$(ratio "${F[$one.hold_p99_ms]}" "${F[$three.hold_p99_ms]}")
            echo "| $label | hold p99 ms | ${F[$one.hold_p99_ms]} | ${F[$three.hold_p99_ms]} | ${r}x | <= 3x | $(verdict "$r" '<=' 3) |"
            echo "| $label | write errors | $(thousands "${F[$one.write_errors]}") | $(thousands "${F[$three.write_errors]}") | | | |"
        done
        echo
        for workload in hold hot; do
            local run
            for run in "one-$workload" "three-$workload"; do
                echo "- $run: ${F[$run.duration_s]} s, $(thousands "${F[$run.writes_ok]}") writes ok, errors: ${F[$run.errors_by_code]};" \
                    "hold p50 ${F[$run.hold_p50_ms]} ms; server CPU ${F[$run.cpu_s]} s (${F[$run.cpu_split]}), bench CPU ${F[$run.client_cpu_s]} s;" \
                    "server warn/error log lines during the bench: ${F[$run.server_log_lines]}${F[$run.leaders]:+; leader(s) of the events of the run (more active events after it): ${F[$run.leaders]}}${F[$run.note]:+; ${F[$run.note]}}${F[$run.died]:+; DIED: ${F[$run.died]}}"
            done
        done
        local busy_runs
        busy_runs=$(grep -E '_busy_(before|after)=[1-9]' "$FIGURES" | sed 's/_busy_.*//' | sort -u | tr '\n' ' ')
        if [[ -n $busy_runs ]]; then
            echo
            echo "Warning: compiler or linker processes were running during: ${busy_runs}(they share the cores)."
        fi
    } >"$RESULTS"
}

# --- MODE=storm --------------------------------------------------------------------------------------

# A gRPC unary call over HTTP/2 with curl: sets GRPC_STATUS to its grpc-status ("curl" when the
# transport failed). The request file is a gRPC frame.
grpc_status() { # address, method path, request file, [token], [response body file]
    GRPC_STATUS=curl
    local headers auth=()
    if [[ -n ${4:-} ]]; then auth=(-H "authorization: Bearer $4"); fi
    headers=$(curl -sS --http2-prior-knowledge --max-time 5 -X POST -H 'content-type: application/grpc' \
        -H 'te: trailers' "${auth[@]}" --data-binary "@$3" -D - -o "${5:-/dev/null}" "http://$1/$2" 2>/dev/null) ||
        return 0
    # One grpc-status: in the trailers, or in the headers of a trailers-only answer.
    if [[ $headers =~ grpc-status:\ *([0-9]+) ]]; then GRPC_STATUS=${BASH_REMATCH[1]}; else GRPC_STATUS=none; fi
}
# Microseconds since the epoch, without a fork.
now_us() { NOW_US=${EPOCHREALTIME//[.,]/}; }
# shellcheck disable=SC2059 # the message is printf escapes on purpose
frame() { # message bytes as printf escapes -> a gRPC frame on stdout (messages under 128 bytes)
    local length
    length=$(printf "$1" | wc -c)
    ((length < 128)) || die "message too long for frame()"
    printf "\\x00\\x00\\x00\\x00\\x$(printf %02x "$length")$1"
}
# HoldSeatsRequest { event_id = 1, best_available = 4 { section_id = 1: "FLOOR", quantity = 2: 1 } }
hold_request() { # event id, file
    [[ $1 =~ ^[A-Za-z0-9_]+$ && ${#1} -lt 100 ]] || die "unexpected event id '$1'"
    frame "\\x0a\\x$(printf %02x "${#1}")$1\\x22\\x09\\x0a\\x05FLOOR\\x10\\x01" >"$2"
}
# SearchEventsRequest { category = 7: "bench", page_size = 8: 100 }
search_request() { frame '\x3a\x05bench\x40\x64' >"$1"; }

storm_mode() {
    local config="$WORK/storm.toml"
    local snapshot_line="snapshot_interval_entries = $SNAPSHOT_ENTRIES"
    if ((SNAPSHOT_ENTRIES == 0)); then snapshot_line="# snapshot_interval_entries left out (SNAPSHOT_ENTRIES=0)"; fi
    cluster_config "$snapshot_line" >"$config"
    local snapshot_shown=$SNAPSHOT_ENTRIES
    if ((SNAPSHOT_ENTRIES == 0)); then snapshot_shown="none (key left out)"; fi
    if ! "$BIN" token --config "$config" --user config-check >/dev/null 2>"$OUT_DIR/config-check.txt"; then
        check_unknown_key "$OUT_DIR/config-check.txt"
        die "the storm config is refused: $(cat "$OUT_DIR/config-check.txt")"
    fi
    fig snapshot_interval_entries "$SNAPSHOT_ENTRIES"
    fig commands_target "$COMMANDS"
    start_cluster storm "$config"
    local address=${ADDR[node-1]}
    warm_up storm "$address" "$config"

    local done_ok=0 rate=0 runs=0 storm_seconds=0 storm_errors=0
    storm_run() { # seconds
        runs=$((runs + 1))
        local name="storm-$runs" key value
        log "$name: hold-only storm for $1 s ($done_ok of $COMMANDS holds done)"
        bench "$name" "$address" "$config" "$1" --hold-only --keep-events --reads-per-write 0 --hold-ttl-seconds "$STORM_HOLD_TTL" ||
            die "$name: turnstile bench failed; see $OUT_DIR/$name.txt"
        declare -A s=()
        while IFS='=' read -r key value; do s[$key]=$value; done < <(summary "$OUT_DIR/$name.json")
        done_ok=$((done_ok + s[holds_ok]))
        storm_errors=$((storm_errors + s[write_errors]))
        storm_seconds=$(awk -v a="$storm_seconds" -v b="${s[duration_s]}" 'BEGIN { printf "%.2f", a + b }')
        rate=${s[writes_per_s]}
        fig "${name}_seconds" "${s[duration_s]}"
        fig "${name}_holds_ok" "${s[holds_ok]}"
        fig "${name}_errors" "${s[errors_by_code]}"
        fig "${name}_hold_p99_ms" "${s[hold_p99_ms]}"
        ((rate > 0)) || die "$name made no hold; see $OUT_DIR/$name.txt"
    }
    seconds_for() { # holds wanted -> seconds at the last rate, 1 to 600
        awk -v n="$1" -v r="$rate" 'BEGIN { s = int(n / r + 0.999); if (s < 1) s = 1; if (s > 600) s = 600; print s }'
    }
    sizes() { # label: du -sb of each node's data dir
        local node
        for node in "${NODES[@]}"; do
            F[$1.$node]=$(du -sb "$WORK/data-$node" | cut -f1)
            fig "disk_${1}_$node" "${F[$1.$node]}"
        done
    }

    storm_run 2 # calibration: the rate sizes the next runs
    while ((done_ok < FIRST_COMMANDS && runs < 10)); do
        storm_run "$(seconds_for $((FIRST_COMMANDS - done_ok)))"
    done
    ((done_ok >= FIRST_COMMANDS)) || die "the storm made only $done_ok holds in $runs runs"
    F[first_at]=$done_ok
    sizes first
    while ((done_ok < COMMANDS && runs < 40)); do
        storm_run "$(seconds_for $((COMMANDS - done_ok)))"
    done
    F[end_at]=$done_ok
    sizes end
    fig storm_holds_ok "$done_ok"
    fig storm_write_errors "$storm_errors"

    # The events and their leaders.
    search_request "$WORK/search.bin"
    local events=()
    grpc_status "$address" turnstile.v1.CatalogService/SearchEvents "$WORK/search.bin" "" "$WORK/search-body.bin"
    [[ $GRPC_STATUS == 0 ]] || die "SearchEvents through curl failed (grpc-status '$GRPC_STATUS')"
    mapfile -t events < <(grep -a -o 'evt_[0-9a-f]\{16\}' "$WORK/search-body.bin" | sort -u)
    ((${#events[@]} > 0)) || die "SearchEvents found no bench event"
    fig probed_events "${#events[@]}"
    local node leader="" most=-1 count
    for node in "${NODES[@]}"; do
        count=$(events_active "${ADDR[$node]}" "$config")
        fig "storm_${node}_events_active" "${count:-?}"
        if [[ -n $count ]] && ((count > most)); then
            most=$count leader=$node
        fi
    done
    ((most > 0)) || die "no node reports an active event"
    local survivor=node-1
    if [[ $leader == node-1 ]]; then survivor="node-2"; fi
    local tokens=() i
    for i in $(seq 8); do
        tokens+=("$("$BIN" token --config "$config" --user "storm-probe-$i" --ttl-seconds 3600)")
    done
    # Holds through the survivor, one per event given, all sent at once by one curl process over one
    # HTTP/2 connection (so the probe's own cost hardly delays the servers or itself). Sets
    # PROBE_STATUS[event] (grpc-status, "none" without an answer) and PROBE_MS[event] (when the
    # answer came, in ms since `since_us`).
    local attempts=0 id
    declare -A PROBE_STATUS=() PROBE_MS=()
    mkdir -p "$WORK/probe"
    probe_round() { # label, since_us, event ids...
        local label=$1 since=$2 config="$WORK/probe/$1.curl" sent_ms id seconds
        shift 2
        : >"$config"
        for id in "$@"; do
            attempts=$((attempts + 1))
            if [[ -s $config ]]; then echo next >>"$config"; fi
            rm -f "$WORK/probe/$id.headers"
            cat >>"$config" <<EOF
url = "http://${ADDR[$survivor]}/turnstile.v1.BookingService/HoldSeats"
http2-prior-knowledge
silent
max-time = 5
request = "POST"
header = "content-type: application/grpc"
header = "te: trailers"
header = "authorization: Bearer ${tokens[attempts % 8]}"
data-binary = "@$WORK/hold-$id.bin"
dump-header = "$WORK/probe/$id.headers"
output = "/dev/null"
write-out = "$id %{time_total}\\n"
EOF
        done
        now_us
        sent_ms=$(((NOW_US - since) / 1000))
        curl -s --parallel --parallel-immediate --parallel-max 1000 -K "$config" >"$WORK/probe/$label.times" 2>/dev/null || true
        declare -A took=()
        while read -r id seconds; do took[$id]=$seconds; done <"$WORK/probe/$label.times"
        PROBE_STATUS=() PROBE_MS=()
        for id in "$@"; do
            PROBE_STATUS[$id]=none
            if [[ -f $WORK/probe/$id.headers && $(<"$WORK/probe/$id.headers") =~ grpc-status:\ *([0-9]+) ]]; then
                PROBE_STATUS[$id]=${BASH_REMATCH[1]}
            fi
            PROBE_MS[$id]=$(awk -v r="$sent_ms" -v t="${took[$id]:-0}" 'BEGIN { printf "%d", r + t * 1000 }')
            echo "$label: $id sent at $sent_ms ms, grpc-status ${PROBE_STATUS[$id]}, answered at ${PROBE_MS[$id]} ms" \
                >>"$OUT_DIR/failover-probes.txt"
        done
    }
    for id in "${events[@]}"; do hold_request "$id" "$WORK/hold-$id.bin"; done
    # Before the kill every event takes a hold through the survivor (the probe works), and the
    # slowest answer is the probe's floor on this cluster.
    now_us
    probe_round before "$NOW_US" "${events[@]}"
    local before_ms=0
    for id in "${events[@]}"; do
        [[ ${PROBE_STATUS[$id]} == 0 ]] ||
            die "a probe hold on $id through $survivor failed before the kill (grpc-status '${PROBE_STATUS[$id]}')"
        if ((PROBE_MS[$id] > before_ms)); then before_ms=${PROBE_MS[$id]}; fi
    done
    fig failover_probe_before_kill_max_ms "$before_ms"

    # After the kill: rounds over the events still refusing, the next 50 ms after the slowest answer
    # of the last, for at most 30 s. An event's time is when its first successful hold answered. A
    # call about an event whose leader died waits inside the survivor, which retries the forward
    # for up to 3 s before it answers UNAVAILABLE.
    log "SIGKILL of $leader (leader of $most active events); holding on ${#events[@]} events through $survivor"
    local killed_us pending=("${events[@]}") next round
    declare -A recovered_ms=() last_status=()
    now_us
    killed_us=$NOW_US
    { kill -KILL "${PID[$leader]}" && wait "${PID[$leader]}"; } 2>/dev/null || true
    unset "LIVE[${PID[$leader]}]" "PID[$leader]"
    for round in $(seq 300); do
        probe_round "round-$round" "$killed_us" "${pending[@]}"
        next=()
        for id in "${pending[@]}"; do
            if [[ ${PROBE_STATUS[$id]} == 0 ]]; then
                recovered_ms[$id]=${PROBE_MS[$id]}
            else
                next+=("$id")
                last_status[$id]=${PROBE_STATUS[$id]}
            fi
        done
        pending=("${next[@]}")
        if ((${#pending[@]} == 0)); then break; fi
        now_us
        (((NOW_US - killed_us) / 1000 < 30000)) || break
        sleep 0.05
    done
    local failover_ms slow median
    read -r failover_ms median slow < <(printf '%s\n' "${recovered_ms[@]}" | sort -n | awk '
        { v[NR] = $1; if ($1 > 500) slow++ }
        END { if (NR == 0) { print 0, 0, 0; exit } print v[NR], v[int((NR + 1) / 2)], slow + 0 }')
    fig failover_killed "$leader"
    fig failover_survivor "$survivor"
    fig failover_ms "$failover_ms"
    fig failover_median_ms "$median"
    fig failover_events_over_500ms "$slow"
    fig failover_events_unrecovered "${#pending[@]}"
    fig failover_rounds "$round"
    local failover_s
    failover_s=$(awk -v ms="$failover_ms" 'BEGIN { printf "%.2f", ms / 1000 }')
    local failover_verdict
    failover_verdict=$(verdict "$failover_s" '<' 3)
    ((${#pending[@]} == 0)) || failover_verdict=MISS

    {
        header "three-node storm: disk growth and failover (benches/cluster_ratio.sh MODE=storm)"
        echo "Three nodes, shards = $SHARDS, replicas = 3, snapshot_interval_entries = ${snapshot_shown}; \`turnstile bench --hold-only"
        echo "--reads-per-write 0\` at concurrency $CONCURRENCY through node-1, in $runs runs: $(thousands "$done_ok") holds in ${storm_seconds} s, $(thousands "$storm_errors") errors."
        echo
        echo "| node | data dir after $(thousands "${F[first_at]}") holds | after $(thousands "${F[end_at]}") holds | ratio | target | result |"
        echo "| --- | ---: | ---: | ---: | --- | --- |"
        local r worst=0
        for node in "${NODES[@]}"; do
            r=$(ratio "${F[first.$node]}" "${F[end.$node]}")
            worst=$(awk -v a="$worst" -v b="$r" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
            echo "| $node | $(thousands "${F[first.$node]}") B | $(thousands "${F[end.$node]}") B | ${r}x | <= 2x | $(verdict "$r" '<=' 2) |"
        done
        echo
        echo "| failover | measured | target | result |"
        echo "| --- | ---: | --- | --- |"
        echo "| SIGKILL of $leader (most active events: $most); until every one of ${#events[@]} bench events takes a hold through $survivor | ${failover_s} s | < 3 s | $failover_verdict |"
        echo
        echo "- the same holds before the kill (all ${#events[@]} at once) answered within ${before_ms} ms"
        echo "- first hold after the kill, per event: median ${median} ms, max ${failover_ms} ms; events over 500 ms: $slow; never within 30 s: ${#pending[@]}${pending[*]:+ (last grpc-status: $(for id in "${pending[@]}"; do printf '%s ' "${last_status[$id]}"; done))}"
        echo "- largest data-dir ratio: ${worst}x"
    } >"$RESULTS"
}

if [[ $MODE == ratio ]]; then
    ratio_mode
else
    storm_mode
fi
echo
cat "$RESULTS"
echo
log "written: $RESULTS (figures in $FIGURES, logs beside them)"
