#!/usr/bin/env python3
"""The two advantages of reports/eviction/README.md, under each eviction.

Reads the summary.csv of the two eviction sweeps (means over seeds and their
95% intervals) and writes advantage.csv beside this file, one row per cache
size, workload, comparison and server count:

  distributed/conventional  AS-x req/s over x req/s, one row per policy x
  md5/rr, maglev/rr         hashing's req/s over round robin's, one row per architecture

with the ratio under each eviction (lru fifo sieve s3fifo gdsf), their
spread (max - min), and `winners`: per eviction, `>` when the numerator's
and the denominator's 95% intervals do not overlap and the numerator is
ahead, `<` the other way, `~` when they overlap (seed noise). `flips` is 1
when one eviction has `>` and another `<`: the eviction changes who wins.
It also prints, for each sweep's results.csv, how many runs of another
eviction equal their LRU twin (same cell and seed) in every other column,
and how many comparisons change their LRU verdict from 64 MiB to 0.2 MiB.

Standard library only; no argument. Run from the repository root:
  python3 reports/eviction/advantage.py
"""

import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SWEEPS = [("paper", os.path.join(HERE, "summary.csv")), ("small", os.path.join(HERE, "small", "summary.csv"))]
EVICTIONS = ["lru", "fifo", "sieve", "s3fifo", "gdsf"]
WORKLOADS = ["surge100", "unc2001", "berkeley1998"]
POLICIES = ["rr", "md5", "maglev"]
ARCHS = ["conventional", "distributed"]
SERVERS = [1, 2, 4, 8, 16]


def read(path):
    cells = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["workload"], r["arch"], r["policy"], r["eviction"], int(r["servers"]))
            cells[key] = (float(r["req_per_s"]), float(r["req_per_s_ci95"]))
    return cells


def twins(path):
    """How many runs of another eviction equal, in every other column, the
    LRU run of the same cell and seed (the same request stream)."""
    lru, others = {}, []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            e = r.pop("eviction")
            key = (r["workload"], r["arch"], r["policy"], r["servers"], r["seed"])
            if e == "lru":
                lru[key] = r
            else:
                others.append((key, r))
    return sum(lru.get(k) == r for k, r in others), len(others)


def winner(num, den):
    (a, ca), (b, cb) = num, den
    if abs(a - b) <= ca + cb:
        return "~"
    return ">" if a > b else "<"


def main():
    out = []
    for caches, path in SWEEPS:
        cells = read(path)
        for w in WORKLOADS:
            pairs = []
            for p in POLICIES:
                pairs.append(("distributed/conventional", p, ("distributed", p), ("conventional", p)))
            for h in ["md5", "maglev"]:
                for a in ARCHS:
                    pairs.append((f"{h}/rr", a, (a, h), (a, "rr")))
            for comparison, of, (na, np_), (da, dp) in pairs:
                for n in SERVERS:
                    ratios, wins = [], []
                    for e in EVICTIONS:
                        num, den = cells[(w, na, np_, e, n)], cells[(w, da, dp, e, n)]
                        ratios.append(num[0] / den[0])
                        wins.append(winner(num, den))
                    flips = int(">" in wins and "<" in wins)
                    out.append(
                        [caches, w, comparison, of, n]
                        + [f"{r:.3f}" for r in ratios]
                        + [f"{max(ratios) - min(ratios):.3f}", "".join(wins), flips]
                    )
    header = ["caches", "workload", "comparison", "of", "servers"] + EVICTIONS + ["spread", "winners", "flips"]
    path = os.path.join(HERE, "advantage.csv")
    with open(path, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(header)
        wr.writerows(out)
    for caches, summary in SWEEPS:
        rows = [r for r in out if r[0] == caches]
        flips = sum(r[-1] for r in rows)
        widest = max(rows, key=lambda r: float(r[-3]))
        if float(widest[-3]) == 0.0:
            spread = "every ratio the same under the five evictions"
        else:
            spread = (
                f"widest spread {widest[-3]} ({widest[1]} {widest[2]} {widest[3]} at {widest[4]} servers: "
                f"{' '.join(f'{e} {x}' for e, x in zip(EVICTIONS, widest[5:10]))})"
            )
        print(f"{caches}: {len(rows)} comparisons, {flips} where the eviction changes the winner; {spread}")
        same, other = twins(os.path.join(os.path.dirname(summary), "results.csv"))
        print(f"{caches}: {same} of {other} non-LRU runs equal their LRU twin in every column but `eviction`")
    # The cache size against the eviction: the verdict of each comparison under LRU, 64 MiB against 0.2 MiB.
    paper = {tuple(r[1:5]): r[-2][0] for r in out if r[0] == "paper"}
    changed = [r for r in out if r[0] == "small" and r[-2][0] != paper[tuple(r[1:5])]]
    print(f"paper -> small caches, lru: {len(changed)} of {len(paper)} comparisons change their verdict (>, <, ~)")
    print(f"wrote {os.path.relpath(path)}", file=sys.stderr)


if __name__ == "__main__":
    main()
