"""A/B two versions of clipper-core in one run, alternating.

    python bench/ab.py A_REF B_REF [--rounds 2] [--scenarios noop,sklearn]
                       [--connections 16,64] [--duration 10] [--env-b KEY=VALUE ...]

Each ref (a commit, a branch, or ``WORKTREE`` for the working tree as it
is) is checked out into its own temporary git worktree, and
``bench/run.py --no-bare`` of the *current* harness is run against each in
turn, A, B, A, B, ..., so both sides see the same machine drift.  A run
imports everything (core, frontends, plugins, and the processes the
cluster starts) from its worktree through ``PYTHONPATH``; entry points come
from the installed distributions, which name modules, so the worktree's
modules are the ones loaded.  ``--env-a``/``--env-b`` set environment
variables for one side only (e.g. the same code with a setting on and off:
``WORKTREE WORKTREE --env-b CLIPPER_PIPELINE_DEPTH=1``).

Prints one row per point (good answers per second and p99 of each side,
medians over the rounds, and B/A) and writes it to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLUGINS = ("local_process", "docker", "k8s", "nomad")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def checkout(ref: str, into: Path) -> Path:
    """A tree of ``ref`` at ``into`` (the working tree itself for WORKTREE)."""
    if ref == "WORKTREE":
        return ROOT
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), ref],
                   check=True, capture_output=True)
    return into


def pythonpath(tree: Path) -> str:
    parts = [tree, tree / "frontends", *(tree / "plugins" / p for p in PLUGINS)]
    return os.pathsep.join(str(p) for p in parts)


def run_side(tree: Path, env_extra: dict[str, str], args: argparse.Namespace,
             out: Path) -> list[dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=pythonpath(tree), **env_extra)
    cmd = [sys.executable, str(HERE / "run.py"), "--no-bare", "--scenarios", args.scenarios,
           "--connections", args.connections, "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--out", str(out)]
    proc = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench/run.py failed for {tree}:\n{proc.stderr[-3000:]}")
    data = json.loads((out / "latest.json").read_text())
    return [p for p in data["points"] if p["system"] == "clipper"]


def summarise(rounds: dict[str, list[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    keys = sorted({(p["scenario"], p["connections"]) for side in rounds.values()
                   for run in side for p in run})
    rows = []
    for scenario, conns in keys:
        row: dict[str, Any] = {"scenario": scenario, "connections": conns}
        for side, runs in rounds.items():
            pts = [p for run in runs for p in run
                   if (p["scenario"], p["connections"]) == (scenario, conns)]
            row[f"{side}_good_rps"] = [p["good_rps"] for p in pts]
            row[f"{side}_p99_ms"] = [p["p99_ms"] for p in pts]
        a = statistics.median(row["a_good_rps"]) if row["a_good_rps"] else 0.0
        b = statistics.median(row["b_good_rps"]) if row["b_good_rps"] else 0.0
        row["ratio_b_over_a"] = round(b / a, 3) if a else None
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/ab.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="ref of side A (or WORKTREE)")
    p.add_argument("b", help="ref of side B (or WORKTREE)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--scenarios", default="noop,sklearn")
    p.add_argument("--connections", default="16,64")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--env-a", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=str(HERE / "results" / "ab.json"))
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ab-", dir=HERE / ".work"
                                 if (HERE / ".work").exists() else None))
    trees: dict[str, Path] = {}
    try:
        trees = {"a": checkout(args.a, work / "a"), "b": checkout(args.b, work / "b")}
        envs = {side: dict(kv.split("=", 1) for kv in getattr(args, f"env_{side}"))
                for side in ("a", "b")}
        rounds: dict[str, list[list[dict[str, Any]]]] = {"a": [], "b": []}
        for i in range(args.rounds):
            for side in ("a", "b"):
                log(f"round {i + 1}/{args.rounds}: side {side} ({getattr(args, side)})")
                rounds[side].append(run_side(trees[side], envs[side], args,
                                             work / f"out-{side}-{i}"))
        rows = summarise(rounds)
        result = {"a": args.a, "b": args.b, "env_a": envs["a"], "env_b": envs["b"],
                  "rounds": args.rounds, "duration_s": args.duration, "rows": rows}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"A = {args.a} {envs['a'] or ''}   B = {args.b} {envs['b'] or ''}")
        print(f"{'scenario':<12}{'conns':>6}{'A good/s':>12}{'B good/s':>12}{'B/A':>7}"
              f"{'A p99':>9}{'B p99':>9}")
        for r in rows:
            a = statistics.median(r["a_good_rps"]) if r["a_good_rps"] else 0
            b = statistics.median(r["b_good_rps"]) if r["b_good_rps"] else 0
            ap = statistics.median(r["a_p99_ms"]) if r["a_p99_ms"] else 0
            bp = statistics.median(r["b_p99_ms"]) if r["b_p99_ms"] else 0
            print(f"{r['scenario']:<12}{r['connections']:>6}{a:>12.0f}{b:>12.0f}"
                  f"{r['ratio_b_over_a'] or 0:>7.3f}{ap:>9.1f}{bp:>9.1f}")
        return 0
    finally:
        for tree in trees.values():
            if tree != ROOT:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
