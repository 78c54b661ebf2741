#!/usr/bin/env bash
# Peer comparison: Turnstile against Redis and PostgreSQL, on this machine, in one run.
#
#   sudo benches/peers.sh                      # CONCURRENCY=64 SECONDS=20
#   CONCURRENCY=32 SECONDS=10 benches/peers.sh
#
# What it does, in order (every server private, in a temp dir, on 127.0.0.1 only; nothing system-wide
# is started, stopped or reconfigured):
#   1. installs redis-server redis-tools postgresql postgresql-contrib if missing (apt, as root);
#   2. Redis, appendonly yes + appendfsync always: redis-benchmark of
#      `SET seat:__rand_int__ u NX EX 600` at CONCURRENCY connections;
#   3. PostgreSQL, fsync on + synchronous_commit on: pgbench of a hold (one conditional UPDATE) and of
#      the seed notes' booking transaction (SELECT ... FOR UPDATE, UPDATE, INSERT) on one event,
#      CONCURRENCY clients, SECONDS each;
#   4. Turnstile (release build, fresh data dir per run), `turnstile bench` at CONCURRENCY:
#      (a) write-only holds + releases, (e) holds alone, (f) health checks alone (the gRPC floor:
#      no engine, disk or token), (b) hold + confirm on one hot event, (c) 100 reads per write,
#      (d) supplementary: write-only workers beside as many read-only workers, at the same time,
#      (g) holds alone on the client crate's booking stream (`--stream`);
#   5. prints the figures, the ratios against the targets and PASS/MISS, and writes them to
#      OUT_DIR/results.{md,json}.
#
# Environment (defaults in brackets):
#   CONCURRENCY [64]     clients / connections / workers, the same for every system
#   SECONDS [20]         seconds per run (Redis: requests sized from a short calibration run)
#   OUT_DIR [a new /tmp/turnstile-peers.XXXXXX]  where results and logs go (kept at exit)
#   REDIS_PORT [63790] PG_PORT [54329] TS_PORT [50151] TS_METRICS_PORT [59464]
#   REDIS_KEYSPACE [1000000000]  range of __rand_int__; large so that (like a Turnstile hold) nearly
#                        every SET NX succeeds and is written to the AOF (a failed NX writes nothing)
#   PG_SEATS [1000000]   seats of the one PostgreSQL event (reset between runs)
#   BUILD [1]            run `cargo build --release -p turnstile` first (0: use the existing binary)
#   FSYNC_PROBE [1]      time fdatasync on this disk with pg_test_fsync (about 15 s)
#   SUPPLEMENTARY [1]    run (d)
#   KEEP_DATA [0]        keep the servers' data dirs (and the copy of the binary) at exit
#
# The load generators run on the same two cores as the servers, for every system alike.

set -euo pipefail

# SECONDS is a bash special variable: read it from the environment before bash counts with it.
RUN_SECONDS=$(printenv SECONDS || echo 20)
CONCURRENCY=${CONCURRENCY:-64}
REDIS_PORT=${REDIS_PORT:-63790}
PG_PORT=${PG_PORT:-54329}
TS_PORT=${TS_PORT:-50151}
TS_METRICS_PORT=${TS_METRICS_PORT:-59464}
REDIS_KEYSPACE=${REDIS_KEYSPACE:-1000000000}
PG_SEATS=${PG_SEATS:-1000000}
BUILD=${BUILD:-1}
FSYNC_PROBE=${FSYNC_PROBE:-1}
SUPPLEMENTARY=${SUPPLEMENTARY:-1}
KEEP_DATA=${KEEP_DATA:-0}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$REPO/benches/peers"
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/turnstile-peers.XXXXXX")}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
# The servers run as their own users and must reach their directories below this one.
chmod 755 "$OUT_DIR"
FIGURES="$OUT_DIR/figures.txt"
: >"$FIGURES"
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[peers %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
fig() { printf '%s=%s\n' "$1" "$2" >>"$FIGURES"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# Compiler and linker processes of other builds on the machine (they share the two cores).
# Other builds running (pgrep -x refuses a pattern over 15 characters, so match the names here).
busy() { ps -eo comm= | grep -c -x -E 'rustc|cargo|cc1|cc1plus|ld|ld.lld|mold|clang' || true; }

[[ $CONCURRENCY =~ ^[0-9]+$ && $CONCURRENCY -ge 1 ]] || die "CONCURRENCY must be a positive integer"
[[ $RUN_SECONDS =~ ^[0-9]+$ && $RUN_SECONDS -ge 1 ]] || die "SECONDS must be a positive integer"

# --- 1. packages -----------------------------------------------------------------------------------

missing=()
for package in redis-server redis-tools postgresql postgresql-contrib; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "missing packages ${missing[*]}; run as root or install them"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$OUT_DIR/apt.log"
fi
command -v python3 >/dev/null || {
    [[ $EUID -eq 0 ]] || die "python3 is needed for the report"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >>"$OUT_DIR/apt.log"
}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
[[ -x $PGBIN/pgbench && -x $PGBIN/initdb ]] || die "no pgbench/initdb under /usr/lib/postgresql/*/bin"

# Run a server as its own unprivileged user when we are root (PostgreSQL refuses root).
as_user() {
    local user=$1
    shift
    if [[ $EUID -eq 0 ]] && id "$user" >/dev/null 2>&1; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}
own() {
    local user=$1 dir=$2
    if [[ $EUID -eq 0 ]] && id "$user" >/dev/null 2>&1; then chown -R "$user:" "$dir"; fi
}

port_free() { [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
for port in "$REDIS_PORT" "$PG_PORT" "$TS_PORT" "$TS_METRICS_PORT"; do
    port_free "$port" || die "port $port is in use; set REDIS_PORT / PG_PORT / TS_PORT / TS_METRICS_PORT"
done

# CPU seconds (user + system, threads included, plus reaped children) of a process and of its
# live children: used around each run to see what the server side spent.
cpu_of_tree() {
    local root=$1 total=0 pid
    for pid in "$root" $(pgrep -P "$root" || true); do
        [[ -r /proc/$pid/stat ]] || continue
        # Fields after the ")" that closes the command name: utime is the 12th, cstime the 15th.
        total=$(($(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13 + $14 + $15}') + total))
    done
    awk -v t="$total" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}
# Runs a command, writing its user + system CPU seconds to the file given first.
timed() {
    local cpu_file=$1
    shift
    local TIMEFORMAT='%3U %3S'
    { time "$@"; } 2>"$cpu_file.time"
    awk '{ printf "%.2f", $1 + $2 }' "$cpu_file.time" >"$cpu_file"
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

# --- state and cleanup ----------------------------------------------------------------------------

REDIS_DIR="$OUT_DIR/redis"
PG_DIR="$OUT_DIR/pg"
PGDATA="$PG_DIR/data"
TS_DATA=""
TS_PID=""
cleanup() {
    set +e
    if [[ -n $TS_PID ]] && kill -0 "$TS_PID" 2>/dev/null; then
        kill "$TS_PID"
        wait "$TS_PID" 2>/dev/null
    fi
    if [[ -f $REDIS_DIR/redis.pid ]]; then
        local pid
        pid=$(cat "$REDIS_DIR/redis.pid")
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    if [[ -f $PGDATA/postmaster.pid ]]; then
        as_user postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1
    fi
    if [[ $KEEP_DATA != 1 ]]; then
        rm -rf "$REDIS_DIR/appendonlydir" "$PGDATA" "$OUT_DIR"/turnstile-data-* "$OUT_DIR/fsync.probe" "$OUT_DIR/turnstile"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$OUT_DIR"
log "results and logs in $OUT_DIR"

# --- machine ---------------------------------------------------------------------------------------

fig date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
fig concurrency "$CONCURRENCY"
fig seconds "$RUN_SECONDS"
fig cpus "$(nproc)"
fig cpu_model "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)"
fig memory "$(free -g | awk '/^Mem:/ { print $2 " GiB" }')"
fig os "$(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
fig filesystem "$(df -T "$OUT_DIR" | awk 'NR == 2 { print $2 " on " $1 }')"
fig loadavg_before "$(loadavg)"
fig busy_before "$(busy)"
ps -eo pcpu,pid,comm --sort=-pcpu | head -n 15 >"$OUT_DIR/top-before.txt"

# --- Turnstile build --------------------------------------------------------------------------------

if [[ $BUILD == 1 ]]; then
    log "cargo build --release -p turnstile"
    if ! (cd "$REPO" && cargo build --release -p turnstile) >"$OUT_DIR/build.log" 2>&1; then
        [[ -x $REPO/target/release/turnstile ]] || die "build failed, see $OUT_DIR/build.log"
        log "build failed (see $OUT_DIR/build.log); using the existing target/release/turnstile"
        fig turnstile_build "failed; existing binary used"
    fi
fi
[[ -x $REPO/target/release/turnstile ]] || die "no target/release/turnstile; run with BUILD=1"
# A private copy: another build may replace the binary while this runs.
TS_BIN="$OUT_DIR/turnstile"
cp "$REPO/target/release/turnstile" "$TS_BIN"
fig turnstile_commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    fig turnstile_dirty " (+ uncommitted changes)"
fi
fig turnstile_binary_mtime "$(date -u -r "$TS_BIN" +%Y-%m-%dT%H:%M:%SZ)"

if [[ $FSYNC_PROBE == 1 ]]; then
    log "pg_test_fsync (disk flush speed)"
    "$PGBIN/pg_test_fsync" -s 1 -f "$OUT_DIR/fsync.probe" >"$OUT_DIR/pg_test_fsync.txt" 2>&1 || true
    fig fsync_probe "$(awk '/one 8kB write/ { on = 1 } on && $1 == "fdatasync" { print $2; exit }' "$OUT_DIR/pg_test_fsync.txt")"
    rm -f "$OUT_DIR/fsync.probe"
fi

# --- 2. Redis ---------------------------------------------------------------------------------------

log "Redis: appendonly yes, appendfsync always, port $REDIS_PORT"
mkdir -p "$REDIS_DIR"
own redis "$REDIS_DIR"
fig redis_version "$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
as_user redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
    --appendonly yes --appendfsync always --save '' --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
for _ in $(seq 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
rcli ping >/dev/null || die "redis-server did not start; see $REDIS_DIR/redis.log"
[[ $(rcli config get appendfsync | tail -n1) == always ]] || die "appendfsync is not always"
REDIS_CMD=(SET 'seat:__rand_int__' u NX EX 600)
redis_bench() { # requests, csv file
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONCURRENCY" -n "$1" -r "$REDIS_KEYSPACE" --csv \
        "${REDIS_CMD[@]}" >"$2"
}
csv_field() { # file, column name
    python3 - "$1" "$2" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(rows[-1][sys.argv[2]] if rows else "")
EOF
}
# A short run sizes the measured one to about SECONDS.
redis_bench $((CONCURRENCY * 500)) "$OUT_DIR/redis-calibration.csv"
calibration_rps=$(csv_field "$OUT_DIR/redis-calibration.csv" rps)
requests=$(awk -v r="$calibration_rps" -v s="$RUN_SECONDS" -v c="$CONCURRENCY" \
    'BEGIN { n = int(r * s); if (n < c * 200) n = c * 200; print n }')
rcli flushall >/dev/null
fig load_redis "$(loadavg)"
server_before=$(cpu_of_tree "$(cat "$REDIS_DIR/redis.pid")")
started=$(date +%s.%N)
timed "$OUT_DIR/redis.cpu" redis_bench "$requests" "$OUT_DIR/redis.csv"
wall=$(sub "$(date +%s.%N)" "$started")
fig cpu_redis_wall "$wall"
fig cpu_redis_server "$(sub "$(cpu_of_tree "$(cat "$REDIS_DIR/redis.pid")")" "$server_before")"
fig cpu_redis_client "$(cat "$OUT_DIR/redis.cpu")"
fig redis_requests "$requests"
fig redis_rps "$(csv_field "$OUT_DIR/redis.csv" rps)"
fig redis_avg_ms "$(csv_field "$OUT_DIR/redis.csv" avg_latency_ms)"
fig redis_p50_ms "$(csv_field "$OUT_DIR/redis.csv" p50_latency_ms)"
fig redis_p99_ms "$(csv_field "$OUT_DIR/redis.csv" p99_latency_ms)"
fig redis_keys_set "$(rcli dbsize)"
fig redis_aof_fsync_info "$(rcli info persistence | tr -d '\r' | grep -E '^aof_enabled|^aof_last_write_status' | tr '\n' ' ')"
log "Redis: $(grep '^redis_rps=' "$FIGURES" | cut -d= -f2) SET/s"
kill "$(cat "$REDIS_DIR/redis.pid")"
for _ in $(seq 100); do [[ -f $REDIS_DIR/redis.pid ]] || break; sleep 0.1; done

# --- 3. PostgreSQL ----------------------------------------------------------------------------------

log "PostgreSQL: fsync on, synchronous_commit on, port $PG_PORT"
mkdir -p "$PG_DIR"
own postgres "$PG_DIR"
as_user postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --no-locale >"$PG_DIR/initdb.log"
cat >>"$PGDATA/postgresql.conf" <<EOF
# benches/peers.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = $((CONCURRENCY + 20 > 100 ? CONCURRENCY + 20 : 100))
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = '512MB'
max_wal_size = '8GB'
checkpoint_timeout = '30min'
EOF
as_user postgres "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PG_DIR/postgres.log" -w start >/dev/null
fig pg_version "$("$PGBIN/postgres" --version | awk '{ print $3 }')"
psql_() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"; }
[[ $(psql_ -At -c 'show synchronous_commit') == on && $(psql_ -At -c 'show fsync') == on ]] ||
    die "PostgreSQL is not running with fsync and synchronous_commit on"
log "PostgreSQL: seeding one event of $PG_SEATS seats"
psql_ -v seats="$PG_SEATS" -f "$HERE/schema.sql" >/dev/null
PG_THREADS=$((CONCURRENCY >= 2 ? 2 : 1))
postmaster_pid() { head -n1 "$PGDATA/postmaster.pid"; }
percentile_ms() { # sorted file of microseconds, fraction
    awk -v q="$2" '{ v[NR] = $1 } END { if (NR == 0) { print ""; exit } i = int(NR * q); if (i < NR * q) i++; if (i < 1) i = 1; printf "%.2f", v[i] / 1000 }' "$1"
}
pg_run() { # name (hold|book)
    local name=$1 phase="pg_$1"
    psql_ -f "$HERE/reset.sql" >/dev/null
    rm -f "$OUT_DIR/pgbench-$name".log.*
    fig "load_$phase" "$(loadavg)"
    log "pgbench $name: -c $CONCURRENCY -j $PG_THREADS -T $RUN_SECONDS"
    local server_before started
    server_before=$(cpu_of_tree "$(postmaster_pid)")
    started=$(date +%s.%N)
    timed "$OUT_DIR/pgbench-$name.cpu" "$PGBIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n \
        -c "$CONCURRENCY" -j "$PG_THREADS" -T "$RUN_SECONDS" -D seats="$PG_SEATS" -f "$HERE/$name.sql" \
        -r -l --log-prefix="$OUT_DIR/pgbench-$name.log" postgres >"$OUT_DIR/pgbench-$name.txt"
    fig "cpu_${phase}_wall" "$(sub "$(date +%s.%N)" "$started")"
    sleep 1 # the backends exit and are reaped, so their CPU shows in the postmaster's
    fig "cpu_${phase}_server" "$(sub "$(cpu_of_tree "$(postmaster_pid)")" "$server_before")"
    fig "cpu_${phase}_client" "$(cat "$OUT_DIR/pgbench-$name.cpu")"
    fig "${phase}_tps" "$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$OUT_DIR/pgbench-$name.txt")"
    fig "${phase}_avg_ms" "$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$OUT_DIR/pgbench-$name.txt")"
    fig "${phase}_transactions" "$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$OUT_DIR/pgbench-$name.txt")"
    fig "${phase}_failed" "$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$OUT_DIR/pgbench-$name.txt")"
    # Per-transaction log: the third field is the latency in microseconds.
    cat "$OUT_DIR/pgbench-$name".log.* | awk '{ print $3 }' | sort -n >"$OUT_DIR/pgbench-$name.latencies"
    fig "${phase}_p50_ms" "$(percentile_ms "$OUT_DIR/pgbench-$name.latencies" 0.50)"
    fig "${phase}_p99_ms" "$(percentile_ms "$OUT_DIR/pgbench-$name.latencies" 0.99)"
    rm -f "$OUT_DIR/pgbench-$name".log.*
}
pg_run hold
fig pg_hold_rows_held "$(psql_ -At -c "select count(*) from seats where status = 'held'")"
pg_run book
fig pg_book_bookings "$(psql_ -At -c 'select count(*) from bookings')"
fig pg_book_seats_booked "$(psql_ -At -c "select count(*) from seats where status = 'booked'")"
log "PostgreSQL: hold $(grep '^pg_hold_tps=' "$FIGURES" | cut -d= -f2) tps, booking $(grep '^pg_book_tps=' "$FIGURES" | cut -d= -f2) tps"
as_user postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
rm -rf "$PGDATA"

# --- 4. Turnstile -----------------------------------------------------------------------------------

# Config: cluster.toml with a private port, data dir and metrics port, no per-buyer rate limit, and
# quieter logs. Everything else (group commit, fsync) as shipped.
TS_CONFIG="$OUT_DIR/turnstile.toml"
sed -e "s/127\.0\.0\.1:50051/127.0.0.1:$TS_PORT/g" \
    -e "s/127\.0\.0\.1:9464/127.0.0.1:$TS_METRICS_PORT/g" \
    -e "s|^data_dir *=.*|data_dir = \"$OUT_DIR/turnstile-data\"|" \
    -e "s/^buyer_requests_per_second *=.*/buyer_requests_per_second = 0/" \
    -e "s/^level *=.*/level = \"warn\"/" \
    "$REPO/cluster.toml" >"$TS_CONFIG"
grep -q "^listen = \"127.0.0.1:$TS_PORT\"" "$TS_CONFIG" || die "could not set the node's port in $TS_CONFIG"
grep -q '^buyer_requests_per_second = 0$' "$TS_CONFIG" || die "could not turn off the buyer rate limit"

ts_start() { # run name
    TS_DATA="$OUT_DIR/turnstile-data-$1"
    rm -rf "$TS_DATA"
    "$TS_BIN" serve --config "$TS_CONFIG" --data-dir "$TS_DATA" >"$OUT_DIR/turnstile-server-$1.log" 2>&1 &
    TS_PID=$!
    for _ in $(seq 150); do
        "$TS_BIN" status --config "$TS_CONFIG" >/dev/null 2>&1 && return 0
        kill -0 "$TS_PID" 2>/dev/null || break
        sleep 0.2
    done
    die "turnstile serve did not come up; see $OUT_DIR/turnstile-server-$1.log"
}
ts_stop() { # phase
    # The node's own counters: how many commands its log commits (one fsync each) carried.
    "$TS_BIN" status --config "$TS_CONFIG" >"$OUT_DIR/turnstile-status-$1.txt" 2>&1 || true
    local commits commands
    read -r commits commands < <(sed -n 's/^log commits *\([0-9]*\) carrying \([0-9]*\) commands.*/\1 \2/p' \
        "$OUT_DIR/turnstile-status-$1.txt") || true
    if [[ -n ${commits:-} ]]; then
        fig "${1}_log_commits" "$commits"
        fig "${1}_log_commands" "$commands"
    fi
    kill "$TS_PID"
    wait "$TS_PID" 2>/dev/null || true
    TS_PID=""
    rm -rf "$TS_DATA"
}
ts_bench() { # name, seconds, bench flags...
    local name=$1 seconds=$2
    shift 2
    "$TS_BIN" bench --config "$TS_CONFIG" --concurrency "$CONCURRENCY" --duration-seconds "$seconds" \
        --quiet --json "$OUT_DIR/turnstile-$name.json" "$@" >"$OUT_DIR/turnstile-$name.txt" 2>&1
}
ts_run() { # phase, name, seconds, bench flags...
    local phase=$1 name=$2 seconds=$3
    shift 3
    ts_start "$name"
    fig "load_$phase" "$(loadavg)"
    fig "${phase}_requested_seconds" "$seconds"
    log "turnstile bench $name: $* (${seconds} s)"
    local server_before started
    server_before=$(cpu_of_tree "$TS_PID")
    started=$(date +%s.%N)
    timed "$OUT_DIR/turnstile-$name.cpu" ts_bench "$name" "$seconds" "$@" ||
        die "turnstile bench $name failed; see $OUT_DIR/turnstile-$name.txt"
    fig "cpu_${phase}_wall" "$(sub "$(date +%s.%N)" "$started")"
    fig "cpu_${phase}_server" "$(sub "$(cpu_of_tree "$TS_PID")" "$server_before")"
    fig "cpu_${phase}_client" "$(cat "$OUT_DIR/turnstile-$name.cpu")"
    ts_stop "$phase"
    log "$(tail -n1 "$OUT_DIR/turnstile-$name.txt")"
}
json_get() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# (a) durable writes only: a hold, then its release (each fsync'd before its reply), over 16 events.
ts_run ts_a a-writes "$RUN_SECONDS" --reads-per-write 0 --confirm-percent 0

# (e) durable holds alone, the like-for-like run against Redis's SET NX EX: one durable command
# per hold, each by a buyer of its own, left to expire (the bench events' TTL outlasts the run).
ts_run ts_e e-hold-only "$RUN_SECONDS" --reads-per-write 0 --hold-only

# (g) the same holds on the booking stream of the client crate (BookingService.Book): every
# worker's holds share one stream, each with its own buyer's token and an idempotency key.
ts_run ts_g g-stream-hold-only "$RUN_SECONDS" --reads-per-write 0 --hold-only --stream

# (f) the gRPC floor: standard health checks alone, through the same server, connections and load
# generator, with no engine, disk or token behind them. No request can go faster than this here;
# it tells how much of (a) to (e) the engine costs and how much the gRPC calls themselves.
ts_run ts_f f-health-only "$RUN_SECONDS" --health-only

# (b) one hot event, every hold confirmed. The bench event has 200,000 general-admission places
# and each of a worker's 512 buyers may hold at most 1,000, so the places are the limit: if the run
# sold out, it is repeated for a duration that stays under 150,000 places.
ts_run ts_b b-hot-confirm "$RUN_SECONDS" --hot-event --reads-per-write 0 --confirm-percent 100
confirmed=$(json_get "$OUT_DIR/turnstile-b-hot-confirm.json" 'd["operations"].get("confirm", {}).get("count", 0)')
hold_errors=$(json_get "$OUT_DIR/turnstile-b-hot-confirm.json" 'd["operations"]["hold"]["errors"]')
if ((confirmed > 190000)); then
    pairs=$(json_get "$OUT_DIR/turnstile-b-hot-confirm.json" 'd["operations"]["confirm"]["count"] / d["duration_seconds"]')
    short=$(awk -v p="$pairs" 'BEGIN { s = int(150000 / p); if (s < 3) s = 3; print s }')
    log "run (b) confirmed $confirmed places with $hold_errors hold errors; repeating for $short s"
    fig ts_b_repeated "first run confirmed $confirmed with $hold_errors hold errors; repeated for $short s"
    mv "$OUT_DIR/turnstile-b-hot-confirm.json" "$OUT_DIR/turnstile-b-hot-confirm.sold-out.json"
    ts_run ts_b b-hot-confirm "$short" --hot-event --reads-per-write 0 --confirm-percent 100
fi

# (c) 100 reads (GetEvent and SearchEvents, half each) per write; writes as in (a).
ts_run ts_c c-reads100 "$RUN_SECONDS" --reads-per-write 100 --confirm-percent 0

# (d) supplementary: CONCURRENCY write-only workers as in (a), and at the same time CONCURRENCY
# read-only workers in a second bench process (a write chance of 1 in 2^32 per operation).
if [[ $SUPPLEMENTARY == 1 ]]; then
    ts_start d
    fig load_ts_d "$(loadavg)"
    fig ts_d_requested_seconds "$RUN_SECONDS"
    log "turnstile bench d: write-only and read-only workers side by side (${RUN_SECONDS} s)"
    server_before=$(cpu_of_tree "$TS_PID")
    started=$(date +%s.%N)
    timed "$OUT_DIR/turnstile-d-writes.cpu" ts_bench d-writes "$RUN_SECONDS" --reads-per-write 0 --confirm-percent 0 &
    writer=$!
    timed "$OUT_DIR/turnstile-d-reads.cpu" ts_bench d-reads "$RUN_SECONDS" --reads-per-write 4294967295 --confirm-percent 0 --seed 2 &
    reader=$!
    wait "$writer" || die "turnstile bench d-writes failed"
    wait "$reader" || die "turnstile bench d-reads failed"
    fig cpu_ts_d_wall "$(sub "$(date +%s.%N)" "$started")"
    fig cpu_ts_d_server "$(sub "$(cpu_of_tree "$TS_PID")" "$server_before")"
    fig cpu_ts_d_client "$(awk '{ s += $1 } END { printf "%.2f", s }' "$OUT_DIR/turnstile-d-writes.cpu" "$OUT_DIR/turnstile-d-reads.cpu")"
    ts_stop ts_d
fi

# --- 5. report --------------------------------------------------------------------------------------

fig loadavg_after "$(loadavg)"
fig busy_after "$(busy)"
ps -eo pcpu,pid,comm --sort=-pcpu | head -n 15 >"$OUT_DIR/top-after.txt"
echo
python3 "$HERE/report.py" "$OUT_DIR"
echo
log "written: $OUT_DIR/results.md, $OUT_DIR/results.json (logs beside them)"
