#!/usr/bin/env bash
# Measures the CPU that dl7's own services spend per request on this
# machine, the figures behind experiments/hardware/modern.toml:
#
#   cargo build --release && experiments/hardware/measure-modern.sh
#   REPEAT=5 DURATION=5 experiments/hardware/measure-modern.sh > reports/bench/modern-cpu.txt
#
# Every figure is CPU seconds (utime + stime from /proc/PID/stat) of one
# service process over a closed-loop `dl7 load` run, divided by the requests
# that run completed, for two single-object workloads (SMALL and LARGE
# bodies) so that a per-request and a per-byte part can be told apart:
#   node-local   load sent to a node that owns the object: parse, pick, hit, reply
#   node-owner   load sent to node 0 of two, whose md5 owner is node 1:
#                node 1's CPU per request it serves to node 0 (the owner's part)
#   node-relay   node 0 in the same run: parse, pick, forward, relay back
#   front        a conventional dl7 front end before one node: its CPU per request
#   origin       load sent to the origin itself: its CPU per request
#   node-miss    a node with a 0-byte cache, one connection: every request a miss
# Each line is the median over REPEAT runs. Services listen on 127.0.0.1 and
# every process started here is stopped by its pid at exit.
set -euo pipefail

REPEAT=${REPEAT:-3}
DURATION=${DURATION:-3}
CONNECTIONS=${CONNECTIONS:-32}
SMALL=${SMALL:-1024}
LARGE=${LARGE:-65536}
DL7=${DL7:-target/release/dl7}
WORK=$(mktemp -d /tmp/dl7-modern-XXXXXX)
PIDS=()

# The shared helpers (start, wait_ready, free_port, cpu_ticks, stop_all), every
# process on every CPU at the niceness of this shell.
NICE=${NICE:-0}
. "$(dirname "$0")/../real-lib.sh"
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
[ -x "$DL7" ] || { echo "error: $DL7 not found; run cargo build --release first" >&2; exit 2; }

ALL_CPUS="0-$(( $(nproc) - 1 ))"

# One object of BYTES body bytes, so every request after the first is a hit.
workload() {
    local bytes=$1 file="$WORK/one-$1.toml"
    printf 'name = "one%s"\nmodel = "list"\n[[file]]\npath = "/one%s.bin"\nsize = %s\n' "$bytes" "$bytes" "$bytes" >"$file"
    echo "$file"
}

# run TARGET WORKLOAD PID...: a warm-up, then REPEAT measured runs; prints
# for each pid the median CPU microseconds per completed request.
run() {
    local target=$1 wl=$2; shift 2
    "$DL7" load --target "$target" --workload "$wl" --connections "$CONNECTIONS" --duration-s 1 >/dev/null 2>&1
    local hz; hz=$(getconf CLK_TCK)
    local rows=()
    for _ in $(seq 1 "$REPEAT"); do
        local before=() after=() p
        for p in "$@"; do before+=("$(cpu_ticks "$p")"); done
        local line
        line=$("$DL7" load --target "$target" --workload "$wl" --connections "$CONNECTIONS" \
            --duration-s "$DURATION" 2>/dev/null | sed -n 's/^dl7-result //p')
        for p in "$@"; do after+=("$(cpu_ticks "$p")"); done
        local req; req=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["requests"])' "$line")
        local row="$req"
        for i in "${!before[@]}"; do row+=" $(( ${after[$i]} - ${before[$i]} ))"; done
        rows+=("$row")
    done
    python3 - "$hz" "${rows[@]}" <<'EOF'
import statistics, sys
hz = int(sys.argv[1])
runs = [list(map(int, r.split())) for r in sys.argv[2:]]
per = [[t / hz / max(r[0], 1) * 1e6 for t in r[1:]] for r in runs]
req = statistics.median(r[0] for r in runs)
print(f"{req:.0f}", " ".join(f"{statistics.median(p[i] for p in per):.1f}" for i in range(len(per[0]))))
EOF
}

echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# load: ${CONNECTIONS} keep-alive connections, ${DURATION} s per run, median of ${REPEAT} runs"
echo "# columns: role body_bytes requests_per_run cpu_us_per_request [second process]"
for bytes in "$SMALL" "$LARGE"; do
    wl=$(workload "$bytes")

    start origin "$ALL_CPUS" origin --workload "$wl"
    ORIGIN=$ADDR
    ORIGIN_PID=$LAST_PID
    N0="127.0.0.1:$(free_port)"
    start node0 "$ALL_CPUS" node --id 0 --nodes "$N0" --origin "$ORIGIN" --policy md5
    NODE0_PID=$LAST_PID
    echo "node-local $bytes $(run "$N0" "$wl" "$NODE0_PID")"
    start front "$ALL_CPUS" front --mode conventional --nodes "$N0" --policy md5
    echo "front $bytes $(run "$ADDR" "$wl" "$LAST_PID")"

    echo "origin $bytes $(run "$ORIGIN" "$wl" "$ORIGIN_PID")"
    stop_all

    # A 0-byte cache: every request is a miss. One connection, so that no
    # request waits on another's fetch (single flight would hide misses).
    start origin "$ALL_CPUS" origin --workload "$wl"
    ORIGIN=$ADDR
    N0="127.0.0.1:$(free_port)"
    start node0 "$ALL_CPUS" node --id 0 --nodes "$N0" --origin "$ORIGIN" --policy md5 --cache-mb 0
    echo "node-miss $bytes $(CONNECTIONS=1 run "$N0" "$wl" "$LAST_PID")"
    stop_all

    # Two nodes; the object's md5 owner among them decides who relays.
    start origin "$ALL_CPUS" origin --workload "$wl"
    ORIGIN=$ADDR
    A="127.0.0.1:$(free_port)"
    B="127.0.0.1:$(free_port)"
    start nodeA "$ALL_CPUS" node --id 0 --nodes "$A,$B" --origin "$ORIGIN" --policy md5
    PA=$LAST_PID
    start nodeB "$ALL_CPUS" node --id 1 --nodes "$A,$B" --origin "$ORIGIN" --policy md5
    PB=$LAST_PID
    # The nodes build their policy over the logical names 10.0.0.i:3128.
    owner=$("$DL7" policy pick --policy md5 --servers 10.0.0.1:3128,10.0.0.2:3128 "/one$bytes.bin" | tail -1)
    if [ "$owner" = 0 ]; then
        RELAY=$B; RELAY_PID=$PB; OWNER_PID=$PA
    else
        RELAY=$A; RELAY_PID=$PA; OWNER_PID=$PB
    fi
    read -r req relay own < <(run "$RELAY" "$wl" "$RELAY_PID" "$OWNER_PID")
    echo "node-relay $bytes $req $relay"
    echo "node-owner $bytes $req $own"
    stop_all
done
