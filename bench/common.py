"""Shared helpers for benchmarks: child processes with peak RSS, timing, markdown tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str
    cpu_seconds: float = 0.0  # user + system, all threads: what the run cost, whatever the load


def run_child(args: list[str], *, env: dict[str, str] | None = None) -> Run:
    """Run a command; its wall time and its own peak RSS (wait4, not the children total)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            args, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=ROOT
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.stderr.write(err.read().decode(errors="replace"))
            raise SystemExit(f"failed: {' '.join(args)}")
        cpu = usage.ru_utime + usage.ru_stime
        return Run(seconds, usage.ru_maxrss / 1024, out.read().decode(), cpu)


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def save(name: str, results: object) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(results, indent=2))
    return path


def table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
