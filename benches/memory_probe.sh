#!/usr/bin/env bash
# How much a page of new memory costs on this machine: maps GIB gibibytes (default 1), writes one
# byte per 4 KiB page (the first touch: the kernel faults a zeroed page in), then writes them all
# again (pages already there), and prints both rates. Run it twice: on a virtual machine whose
# host backs guest memory only when it is first touched, and takes back what the guest frees (free
# page reporting, virtio-balloon), the first touch stays slow however often it runs, while the
# second pass is fast. A process whose memory grows, or that gives memory back to the kernel and
# takes it again, pays the first rate for every new page.
#
#   benches/memory_probe.sh [GIB]
set -euo pipefail
GIB=${1:-1}
python3 - "$GIB" <<'PY'
import mmap, sys, time
size = int(float(sys.argv[1]) * (1 << 30))
page = 4096
memory = mmap.mmap(-1, size)
for label in ("first touch", "second touch"):
    started = time.perf_counter()
    for offset in range(0, size, page):
        memory[offset] = 1
    seconds = time.perf_counter() - started
    print(f"{label}: {size / (1 << 30):.2f} GiB in {seconds:.2f} s, {size / (1 << 30) / seconds:.2f} GiB/s")
memory.close()
PY
if [[ -r /sys/module/page_reporting/parameters/reported_kib ]]; then
    echo "free page reporting: $(cat /sys/module/page_reporting/parameters/reported_kib) KiB handed back to the host since boot"
fi
