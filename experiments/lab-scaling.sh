#!/usr/bin/env bash
# The lab scaling experiment (issue 6), as root: one 8-node emulated lab
# (experiments/lab-8nodes.toml), for N = 1, 2, 4, 8 nodes the distributed
# architecture (kernel direct routing over the first N nodes) and the
# conventional one (dl7's L7 front end), rr and md5, Surge-100, node CPU
# emulated as in experiments/hardware/lab10mbit.toml.
# Output in $OUT (default reports/lab-scaling):
#   runs/<arch>-<N>/{results,nic}.csv   one `dl7 cluster` run each
#   real-lab.csv                        every results row (mode = real-lab)
#   nic.csv                             every host's NIC bytes per cell
#   fe-share.csv                        front end TX bytes / bytes the client received
#   fe-drops.csv                        packets tbf dropped at the front end's switch port
#   sudo experiments/lab-scaling.sh              # about 10 minutes
#   SIZES="2" DURATION=5 sudo experiments/lab-scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DL7=${DL7:-target/release/dl7}
LAB=experiments/lab-8nodes.toml
SIZES=${SIZES:-"1 2 4 8"}
POLICIES=${POLICIES:-"rr,md5"}
OUT=${OUT:-reports/lab-scaling}
extra=()
[ -n "${DURATION:-}" ] && extra+=(--duration-s "$DURATION")
[ -n "${WARMUP:-}" ] && extra+=(--warmup-s "$WARMUP")

"$DL7" lab up --clean "$LAB"
trap '"$DL7" lab down "$LAB"' EXIT
mkdir -p "$OUT/runs"
drops() { tc -s qdisc show dev dl7-fe | awk '/dropped/{gsub(",","",$7); print $7; exit}'; }
echo "arch,servers,fe_port_tbf_drops" >"$OUT/fe-drops.csv"
for n in $SIZES; do
  for arch in distributed conventional; do
    if [ "$arch" = distributed ]; then
      "$DL7" lab arch "$LAB" distributed --nodes "$n"
      file=experiments/lab-scaling.toml
    else
      "$DL7" lab arch "$LAB" conventional
      file=experiments/lab-scaling-conventional.toml
    fi
    d0=$(drops)
    "$DL7" cluster "$file" --servers "$n" --policies "$POLICIES" --out "$OUT/runs/$arch-$n" "${extra[@]}"
    echo "$arch,$n,$(( $(drops) - d0 ))" >>"$OUT/fe-drops.csv"
  done
done
# One file each, in run order.
first=1
for f in "$OUT"/runs/*/results.csv; do
  if [ $first = 1 ]; then cat "$f"; first=0; else tail -n +2 "$f"; fi
done >"$OUT/real-lab.csv"
first=1
for f in "$OUT"/runs/*/nic.csv; do
  if [ $first = 1 ]; then cat "$f"; first=0; else tail -n +2 "$f"; fi
done >"$OUT/nic.csv"
# Front end TX per byte the client received, per cell (direct routing: a few %).
awk -F, 'NR>1 && $5=="fe" {fe[$1","$2","$3]=$7} NR>1 && $5=="c1" {c[$1","$2","$3]=$8}
  END {print "arch,policy,servers,fe_tx_bytes,client_rx_bytes,fe_tx_share";
       for (k in fe) printf "%s,%d,%d,%.4f\n", k, fe[k], c[k], fe[k]/(c[k]>0?c[k]:1)}' \
  "$OUT/nic.csv" | sort >"$OUT/fe-share.csv"
cat "$OUT/fe-share.csv"
