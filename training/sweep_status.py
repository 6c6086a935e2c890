"""Where a sweep stands: ``python -m training.sweep status OUT``.

Prints one line per cell (done / running / queued / failed; a failed cell shows its log's last line) and rebuilds
``OUT/results.csv`` and ``OUT/report.md`` from the run folders that have finished (``done.json``): every
``eval/*/metrics.json`` of a finished run becomes its results row again, through the results table's own append
(a row with the same key is replaced, never duplicated), so rows a crashed or concurrent writer lost come back.

The cells are those the sweep listed in ``OUT/.sweep/cells.json`` plus any run folder or state file found in OUT.
A cell's state: ``done`` if its run folder has ``done.json`` (and no Oracle evaluation is owed); otherwise what its
state file says (``OUT/.sweep/<cell>.json``, written by the executors); a "running" cell whose process is gone from
this machine is shown as ``queued`` (stopped; rerunning the sweep resumes it); no state file: ``queued``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

from data.cli import run_cli
from training.executors import STATE_DIR, STATES, last_line, log_path, read_state
from training.run_folder import DONE, read_json, results_row


def cell_names(out: Path) -> list[str]:
    names: list[str] = []
    listed = out / STATE_DIR / "cells.json"
    if listed.is_file():
        try:
            names += json.loads(listed.read_text(encoding="utf-8")).get("cells", [])
        except ValueError:
            pass
    found = {p.name for p in out.iterdir() if p.is_dir() and (p / "config.json").is_file()} if out.is_dir() else set()
    found |= {p.stem for p in (out / STATE_DIR).glob("*.json") if p.stem != "cells"}
    return names + sorted(found - set(names))


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def cell_status(out: Path, name: str) -> dict[str, Any]:
    """{"cell", "state", "attempt", "where", "detail"} for one cell."""
    state = read_state(out, name)
    run = out / name
    kind = state.get("state", "queued")
    detail = state.get("note", "")
    if (run / DONE).is_file() and kind != "running":
        kind, detail = "done", ""
    elif kind == "done":  # the state file says done but the run folder does not: it was removed or moved
        kind, detail = "queued", "no done.json in the run folder"
    elif kind == "running" and state.get("pid") and state.get("executor") != "slurm" and not state.get("job_id"):
        if state.get("host", socket.gethostname()) == socket.gethostname() and not _alive(state["pid"]):
            kind, detail = "queued", "stopped (its process is gone); rerun the sweep to resume it"
    if kind == "failed":
        detail = state.get("error") or last_line(log_path(out, name))
    elif kind == "running":
        detail = last_line(log_path(out, name))
    where = state.get("job_id") or (f"pid {state['pid']}" if state.get("pid") else "")
    if state.get("devices"):
        where += f" gpu {state['devices']}"
    return {
        "cell": name,
        "state": kind if kind in STATES else "queued",
        "attempt": state.get("attempt", 0),
        "where": where.strip(),
        "detail": detail,
    }


def status_table(rows: list[dict[str, Any]], width: int = 100) -> str:
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    name_w = max([len("cell")] + [len(r["cell"]) for r in rows])
    where_w = max([len("where")] + [len(r["where"]) for r in rows])
    lines = [f"{'cell':<{name_w}}  {'state':<7}  {'try':>3}  {'where':<{where_w}}  detail"]
    for r in rows:
        detail = r["detail"] if len(r["detail"]) <= width else r["detail"][: width - 3] + "..."
        lines.append(
            f"{r['cell']:<{name_w}}  {r['state']:<7}  {r['attempt'] or '':>3}  {r['where']:<{where_w}}  "
            f"{detail}".rstrip()
        )
    lines.append(", ".join(f"{counts[s]} {s}" for s in STATES) + f" of {len(rows)} cells")
    return "\n".join(lines)


def finished_rows(run_dir: Path, results_csv: Path) -> list[dict[str, Any]]:
    """The results rows of a finished run, rebuilt from config.json and each eval/*/metrics.json."""
    meta = read_json(run_dir / "config.json")
    config = meta["config"] | {
        "n_speech_used": meta.get("n_speech_used"),
        "source_language": meta.get("source_language", ""),
    }
    try:
        rel = str(run_dir.resolve().relative_to(results_csv.resolve().parent))
    except ValueError:
        rel = str(run_dir.resolve())
    rows = []
    for metrics_file in sorted(run_dir.glob("eval/*/metrics.json")):
        metrics = read_json(metrics_file)
        rows.append(
            results_row(
                config,
                metrics,
                split=metrics.get("split", ""),
                language=metrics.get("language", ""),
                oracle=bool(metrics.get("oracle")),
                run_dir=rel,
            )
        )
    return rows


def rebuild_results(out: Path) -> int:
    """Append (replace by key) the rows of every finished run in ``out`` to ``out/results.csv``; returns the count."""
    from evaluation.results import append_results

    results = out / "results.csv"
    rows = []
    for name in cell_names(out):
        run = out / name
        if (run / DONE).is_file() and (run / "config.json").is_file():
            rows += finished_rows(run, results)
    if rows:
        append_results(results, rows)
    return len(rows)


@dataclass
class StatusConfig:
    out: str = field(
        default="",
        metadata={"help": "the sweep folder (--out of python -m training.sweep)", "positional": True, "required": True},
    )
    no_rebuild: bool = field(default=False, metadata={"help": "only print the table; leave results.csv alone"})


def main(argv: list[str] | None = None) -> int:
    return run_cli(
        _status, StatusConfig, argv=argv, prog="python -m training.sweep status", description=__doc__.splitlines()[0]
    )


def _status(args: StatusConfig) -> int:
    out = Path(args.out)
    if not out.is_dir():
        print(f"error: {out} is not a folder; pass the --out folder of a sweep", file=sys.stderr)
        return 2
    names = cell_names(out)
    if not names:
        print(
            f"error: {out} holds no sweep cells (no {STATE_DIR}/cells.json, no run folders); pass the --out "
            "folder of a sweep",
            file=sys.stderr,
        )
        return 2
    print(status_table([cell_status(out, n) for n in names]))
    if args.no_rebuild:
        return 0
    from evaluation.results import ResultsError
    from training.sweep import write_report

    try:
        n = rebuild_results(out)
    except (ResultsError, OSError, ValueError, KeyError) as exc:
        print(f"error: rebuilding {out / 'results.csv'} failed: {exc}", file=sys.stderr)
        return 2
    report = write_report(out)
    if n:
        print(f"results: {out / 'results.csv'} ({n} row(s) from finished runs)")
    if report is not None:
        print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
