#!/usr/bin/env bash
# The lab scaling experiment (issue 6), as root: one 8-node emulated lab,
# for N = 1, 2, 4, 8 nodes the distributed architecture (kernel direct
# routing over the first N nodes) and the conventional one (dl7's L7 front
# end), rr and md5, Surge-100. Per run it also records the kernel's NIC byte
# counters of the front end and the client (front end TX vs bytes delivered).
# Output: reports/lab-scaling/<arch>-<policy>-<N>/results.csv and counters.csv.
#   sudo experiments/lab-scaling.sh            # about 10 minutes
#   SIZES="2" DURATION=5 sudo experiments/lab-scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DL7=${DL7:-target/release/dl7}
LAB=experiments/lab-8nodes.toml
SIZES=${SIZES:-"1 2 4 8"}
OUT=${OUT:-reports/lab-scaling}
extra=()
[ -n "${DURATION:-}" ] && extra+=(--duration-s "$DURATION")
[ -n "${WARMUP:-}" ] && extra+=(--warmup-s "$WARMUP")

"$DL7" lab up --clean "$LAB"
trap '"$DL7" lab down "$LAB"' EXIT
mkdir -p "$OUT"
counters="$OUT/counters.csv"
echo "arch,policy,servers,fe_tx_bytes,fe_rx_bytes,client_rx_bytes,fe_tx_share" >"$counters"
ctr() { cat "/sys/class/net/$1/statistics/$2"; }
POLICIES=${POLICIES:-"rr md5"}
for n in $SIZES; do
  for arch in distributed conventional; do
   for policy in $POLICIES; do
    if [ "$arch" = distributed ]; then
      "$DL7" lab arch "$LAB" distributed --nodes "$n"
      file=experiments/lab-scaling.toml
    else
      "$DL7" lab arch "$LAB" conventional
      file=experiments/lab-scaling-conventional.toml
    fi
    # A host transmits what its bridge port receives.
    fe_tx0=$(ctr dl7-fe rx_bytes); fe_rx0=$(ctr dl7-fe tx_bytes); del0=$(ctr dl7-c1 tx_bytes)
    "$DL7" cluster "$file" --servers "$n" --policies "$policy" --out "$OUT/$arch-$policy-$n" "${extra[@]}"
    fe_tx=$(( $(ctr dl7-fe rx_bytes) - fe_tx0 )); fe_rx=$(( $(ctr dl7-fe tx_bytes) - fe_rx0 ))
    del=$(( $(ctr dl7-c1 tx_bytes) - del0 ))
    share=$(awk "BEGIN{printf \"%.4f\", $fe_tx/($del>0?$del:1)}")
    echo "$arch,$policy,$n,$fe_tx,$fe_rx,$del,$share" | tee -a "$counters"
   done
  done
done
