#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed number of executions and prints,
# per target, the executions done and the crashes found (a crash leaves its
# input under fuzz/artifacts/TARGET/ and makes this script exit 1).
#   fuzz/run.sh                       # 10M executions of the HTTP targets, 1M of the others
#   HTTP_RUNS=100000 OTHER_RUNS=10000 fuzz/run.sh
# Needs `cargo install cargo-fuzz`; cargo-fuzz passes nightly-only sanitizer
# flags, so on a stable toolchain this sets RUSTC_BOOTSTRAP=1 for the fuzz
# build only.
set -euo pipefail
cd "$(dirname "$0")"
HTTP_RUNS=${HTTP_RUNS:-10000000}
OTHER_RUNS=${OTHER_RUNS:-1000000}
export RUSTC_BOOTSTRAP=1
status=0
for target in request_head response_head log_lines experiment_toml; do
  case $target in request_head|response_head) runs=$HTTP_RUNS ;; *) runs=$OTHER_RUNS ;; esac
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if cargo fuzz run "$target" "corpus/$target" -- -runs="$runs" -max_len=4096 >"$log" 2>&1; then crashed=0; else crashed=1; fi
  done_runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1 || true)
  secs=$(grep -oE 'in [0-9]+ second' "$log" | grep -oE '[0-9]+' | tail -1 || true)
  echo "$target: ${done_runs:-0} executions in ${secs:-?} s, crashes: $crashed"
  if [ "$crashed" = 1 ]; then tail -30 "$log"; status=1; fi
  rm -f "$log"
done
exit $status
