#!/usr/bin/env bash
# How long one small durable write takes on the disk under DIR (default: target/): a 4 KiB write
# and fdatasync, over and over for SECONDS_TO_RUN (5); prints flushes/s and p50 / p99 / max.
#   benches/fsync_probe.sh [DIR]
set -euo pipefail
DIR=${1:-$(cd "$(dirname "$0")/.." && pwd)/target}
mkdir -p "$DIR"
python3 - "$DIR/fsync-probe.tmp" "${SECONDS_TO_RUN:-5}" <<'PY'
import os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT)
latencies, began = [], time.time()
while time.time() - began < seconds:
    started = time.time()
    os.write(fd, b"x" * 4096)
    os.fdatasync(fd)
    latencies.append(time.time() - started)
os.close(fd)
os.unlink(path)
latencies.sort()
at = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1e3
print(f"{len(latencies) / seconds:.0f} flushes/s; p50 {at(0.5):.2f} ms, p99 {at(0.99):.2f} ms, max {latencies[-1] * 1e3:.1f} ms")
PY
