#!/usr/bin/env bash
# User-space instructions per request of one dl7 service, counted by
# `valgrind --tool=callgrind` (exact and insensitive to the other load on
# the machine: the figure to compare optimisations with, before and after).
# The kernel's share is not counted: see experiments/bench-real.sh for CPU
# time per request.
#
#   cargo build --release && SUBJECT=front N=1 experiments/callgrind-real.sh
#   SUBJECT=node N=4 experiments/callgrind-real.sh     # node 0's dispatcher, load straight at it
#   DL7=/path/to/older/dl7 SUBJECT=front experiments/callgrind-real.sh   # the same for another build
#
# Every object is cached first (a warm-up straight at the nodes), then the
# counters are zeroed (callgrind_control -z), REQUESTS requests are sent in
# a closed loop on CONNECTIONS connections, and the counters dumped. Prints
# and appends to $OUT/callgrind.csv: subject, nodes, requests, instructions,
# instructions per request, the binary's git commit; the top functions
# (callgrind_annotate) go to $OUT/profile/callgrind-$SUBJECT-$N-$LABEL.txt. Installs valgrind if it
# is missing (apt-get; needs root). Never used by tests.
set -euo pipefail

SUBJECT=${SUBJECT:-front}
N=${N:-1}
DURATION=${DURATION:-4}
CONNECTIONS=${CONNECTIONS:-16}
WORKLOAD=${WORKLOAD:-surge100}
DL7=${DL7:-target/release/dl7}
OUT=${OUT:-reports/bench-real}
LABEL=${LABEL:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
WORK=$(mktemp -d /tmp/dl7-callgrind-XXXXXX)
PIDS=()

. "$(dirname "$0")/real-lib.sh"
cleanup() {
    stop_all
    [ -n "${KEEP:-}" ] && cp "$WORK"/callgrind.out.* "$KEEP"/ 2>/dev/null; rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

need valgrind valgrind
[ -x "$DL7" ] || { echo "error: $DL7 not found; run cargo build --release first" >&2; exit 2; }
mkdir -p "$OUT/profile"

load() { # load TARGET SECONDS: one closed-loop run; prints its result JSON
    "$DL7" load --target "$1" --workload "$WORKLOAD" --seed 1 --connections "$CONNECTIONS" \
        --duration-s "$2" --timeout-ms 20000 2>/dev/null | sed -n 's/^dl7-result //p'
}

# under_valgrind NAME ARGS...: like `start`, with the service under callgrind.
under_valgrind() {
    local name=$1; shift
    valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file="$WORK/callgrind.out" "$DL7" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_ready "$name" 1500
}

case $SUBJECT in
front)
    start_cluster "$N" 0-1 md5
    for a in "${NODES[@]}"; do load "$a" 1 >/dev/null; done
    under_valgrind front front --mode conventional --nodes "$NODE_LIST" --policy md5
    TARGET=$ADDR
    ;;
node)
    [ "$N" -ge 2 ] || { echo "error: SUBJECT=node needs N >= 2" >&2; exit 2; }
    # Node 0 under valgrind, the others as usual; node 0 is the receiver.
    start origin 0-1 origin --workload "$WORKLOAD"
    ORIGIN=$ADDR
    NODES=()
    for i in $(seq 0 $((N - 1))); do NODES+=("127.0.0.1:$(free_port)"); done
    NODE_LIST=$(IFS=,; echo "${NODES[*]}")
    for i in $(seq 1 $((N - 1))); do
        start "node$i" 0-1 node --id "$i" --nodes "$NODE_LIST" --origin "$ORIGIN" --policy md5
    done
    under_valgrind node0 node --id 0 --nodes "$NODE_LIST" --origin "$ORIGIN" --policy md5
    TARGET=${NODES[0]}
    for a in "${NODES[@]:1}"; do load "$a" 1 >/dev/null; done
    load "$TARGET" 2 >/dev/null # node 0's own objects cached, its pools warm
    ;;
*) echo "error: SUBJECT must be front or node, not $SUBJECT" >&2; exit 2 ;;
esac
VPID=$LAST_PID

load "$TARGET" 1 >/dev/null # pools and connections warm under valgrind
callgrind_control -z "$VPID" >/dev/null 2>&1
result=$(load "$TARGET" "$DURATION")
callgrind_control -d "$VPID" >/dev/null 2>&1
sleep 1
dump=$(ls -t "$WORK"/callgrind.out* | grep -v '\.out$' | head -1)
# Self cost per function, summed from the dump (callgrind_annotate 3.19
# misreads a dump taken after -z: it charges the call in progress to clone).
python3 - "$dump" "$result" "$SUBJECT" "$N" "$LABEL" >"$OUT/profile/callgrind-$SUBJECT-$N-$LABEL.txt" <<'EOF'
import collections, json, sys
dump, result, subject, n, label = sys.argv[1:6]
requests = max(json.loads(result)["requests"], 1)
self_cost, fn, skip, total = collections.Counter(), None, False, 0
for line in open(dump):
    if line.startswith("fn="):
        fn = line[3:].strip()
    elif line.startswith("calls="):
        skip = True  # the next cost line is the callee's inclusive cost
    elif line[:1].isdigit() or line[:1] in "+-*":
        if skip:
            skip = False
            continue
        parts = line.split()
        if len(parts) >= 2 and fn is not None:
            self_cost[fn] += int(parts[1])
            total += int(parts[1])
print(f"# {subject}, {n} nodes, build {label}: user-space instructions by function (self), one load run")
print(f"# load: {result}")
print(f"# {total} instructions, {total / requests:.0f} per request")
print(f"{'per request':>12} {'share':>6}  function")
for name, c in self_cost.most_common(50):
    print(f"{c / requests:12.0f} {100 * c / total:5.1f}%  {name}")
EOF
python3 - "$SUBJECT" "$N" "$result" "$dump" "$LABEL" "$OUT/callgrind.csv" <<'EOF'
import csv, json, os, sys
subject, n, result, dump, label, path = sys.argv[1:7]
requests = json.loads(result)["requests"]
errors = json.loads(result)["errors"]
ir = None
for line in open(dump):
    if line.startswith("summary:") or line.startswith("totals:"):
        ir = int(line.split()[1])
assert ir is not None, "no totals in " + dump
per = ir / max(requests, 1)
print(f"{subject} {n} nodes: {requests} requests ({errors} errors), {ir} instructions, {per:.0f} per request ({label})")
new = not os.path.exists(path)
with open(path, "a", newline="") as f:
    w = csv.writer(f)
    if new:
        w.writerow(["subject", "nodes", "requests", "instructions", "instructions_per_request", "build"])
    w.writerow([subject, n, requests, ir, f"{per:.0f}", label])
EOF
