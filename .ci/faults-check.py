"""Checks a sweep of .ci/faults-smoke.toml: faults-check.py OUT LOG MODE.

The row's mode is MODE; md5 from 1 to 2 members moves about half the
catalog; the director's log shows node 1 routed in, out (the kill) and in
again (the restart), in that order; at most 5% of the requests failed.
"""
import csv
import re
import sys

MEASURE_S = 8.0

out, log, mode = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
[r] = list(csv.DictReader(open(out + "/results.csv")))
assert r["mode"] == mode, r["mode"]
moved, errors = float(r["moved_frac"]), int(r["errors"])
requests = float(r["req_per_s"]) * MEASURE_S
print(f"{mode} faults: {float(r['req_per_s']):.1f} req/s, moved_frac {moved:.3f}, "
      f"errors {errors}, refill_s {r['refill_s'] or '-'}")
assert 0.4 < moved < 0.6, "md5 from 1 to 2 members moves about half the catalog"
routed = re.findall(r"nodes routed (\[[a-z, ]+\])", log)
want, at = ["[true, true]", "[true, false]", "[true, true]"], 0
for m in routed:
    if at < len(want) and m == want[at]:
        at += 1
assert at == len(want), f"the director routed {routed}, not node 1 in, out and in again"
assert requests > 0 and errors <= 0.05 * requests, "more than 5% of the requests failed"
