"""The run folder: its layout, config.json with the code version, curves.csv, the model card, the results row.

<run>/config.json            the TrainConfig + code version + phases + data counts (enough to reproduce)
<run>/curves.csv             training loss and dev scores by optimizer step (the app's score curves)
<run>/checkpoints/step-N/    resumable state (removed when the run completes unless asked to keep it)
<run>/model/                 final weights in Hugging Face format + processor + README.md (model card)
<run>/lora_adapter/          the LoRA adapter before merging (LoRA runs only)
<run>/eval/<name>/           metrics.json + predictions.jsonl per evaluated split (and language / oracle)
<run>/done.json              written last: the run finished; sweeps skip it
<run>/.lock                  while a process owns the folder: its pid, host and start time (``acquire_lock``)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked
    fcntl = None  # type: ignore[assignment]

from data.textio import atomic_write_text, read_text
from evaluation.metrics import CONTRACT_KEYS
from training.config import flat_record

CURVE_COLUMNS = ("step", "epoch", "phase", "kind", "split", "loss", "lr", "intent_accuracy", "entity_f1", "slu_f1", "n")
DONE = "done.json"


# The score columns a results row takes from an evaluation summary: the metrics, their counts and the invalid outputs.
SCORE_COLUMNS = frozenset(CONTRACT_KEYS + ("n_invalid",))


def code_version() -> str:
    """The git commit of the project (with ``-dirty`` when files differ), or ``unknown`` outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


class RunFolderError(OSError):
    """A run-folder file that cannot be read, or a folder another process owns; the message names it and the fix.

    An ``OSError``, so ``python -m training.train`` and ``training.evaluate`` print it as one line with exit 2."""


class RunFolderBusy(RunFolderError):
    """Another live process owns the run folder."""


LOCK = ".lock"


def _lock_info(fh: Any) -> dict[str, Any]:
    fh.seek(0)
    try:
        info = json.loads(fh.read() or "{}")
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError, OverflowError):
        return False
    return True


@contextmanager
def acquire_lock(run_dir: str | os.PathLike, *, log: Callable[[str], Any] | None = print) -> Iterator[Path]:
    """Own ``run_dir`` for the duration: ``RUN/.lock`` is flocked and holds the owner's pid, host and start time.

    A second process asking for the same folder gets ``RunFolderBusy`` at once, naming the owner's pid. The lock is
    ``fcntl.flock``, which the kernel releases when its holder dies, so the pid a killed run left in the file is a
    stale lock: it is taken over, with a message saying whose it was. The file is removed on release. Works between
    processes on one machine (Linux, macOS); on Windows, without ``fcntl``, the folder is not locked.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    if fcntl is None:
        yield path
        return
    while True:
        fh = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _lock_info(fh)
            fh.close()
            raise RunFolderBusy(
                f"{run_dir} is in use by another run (pid {info.get('pid', '?')} on "
                f"{info.get('host', '?')}, since {info.get('started', '?')}); wait for it to finish, "
                "or choose another --output_dir"
            ) from None
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()  # the previous owner removed the file between our open and our flock: lock the new one
    try:
        old = _lock_info(fh)
        if old.get("pid") and log is not None:
            state = (
                "no longer running"
                if not _pid_alive(old["pid"]) or old.get("host") != socket.gethostname()
                else "running but no longer holding the lock"
            )
            log(
                f"taking over the stale lock of {run_dir}: it was held by pid {old['pid']} on {old.get('host', '?')} "
                f"since {old.get('started', '?')}, {state}"
            )
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            )
            + "\n"
        )
        fh.flush()
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)
            if created and not any(run_dir.iterdir()):
                run_dir.rmdir()  # a run that wrote nothing (a bad setting found at start) leaves no empty folder
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()


def read_json(path: Path) -> Any:
    text = read_text(path, RunFolderError)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc}); the file is damaged (restore or delete it)") from None


def write_curves(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CURVE_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def read_curves(path: Path) -> list[dict[str, Any]]:
    """The rows of a curves.csv, typed; [] when there is none. A damaged file is one ``RunFolderError``."""
    if not Path(path).is_file():
        return []
    reader = csv.DictReader(io.StringIO(read_text(path, RunFolderError, what="curves file"), newline=""))
    rows = []
    try:
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if None in row:
                raise RunFolderError(f"{where}: more fields than the header has columns")
            for key in ("step", "n"):
                row[key] = _number(row.get(key), int, key, where)
            for key in ("epoch", "loss", "lr", "intent_accuracy", "entity_f1", "slu_f1"):
                row[key] = _number(row.get(key), float, key, where)
            rows.append(row)
    except csv.Error as exc:
        raise RunFolderError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _number(value: Any, kind: type, key: str, where: str) -> Any:
    if value in (None, ""):
        return None
    try:
        number = float(value)
        if kind is int:
            if not math.isfinite(number) or number != int(number):
                raise ValueError(value)
            return int(number)
        return number
    except (TypeError, ValueError):
        raise RunFolderError(
            f"{where}: column {key!r} must be a{'n integer' if kind is int else ' number'}, got "
            f"{str(value)[:40]!r}; the curves file is damaged (delete the line, or the file to "
            "start the curves afresh)"
        ) from None


def model_card(config: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """A Hugging Face model card: YAML front matter (base model, metrics) and a short description."""
    config = flat_record(config)
    base = config.get("model", "")
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: audio-text-to-text",
        "tags:",
        "- spoken-language-understanding",
        "- slurp",
        "- lalm-slu",
    ]
    if base and base != "tiny" and not Path(str(base)).exists():
        lines += [f"base_model: {base}"]
    if metrics:
        lines += ["model-index:", f"- name: {Path(str(config.get('output_dir', 'run'))).name}", "  results:"]
        for name, m in metrics.items():
            lines += [
                "  - task:",
                "      type: spoken-language-understanding",
                "    dataset:",
                f"      name: {corpus_name(config)} {name}",
                f"      type: {corpus_name(config)}",
                "    metrics:",
            ]
            for key in ("intent_accuracy", "entity_f1", "slu_f1"):
                if key in m:
                    lines += [f"    - type: {key}", f"      value: {float(m[key]):.4f}"]
    lines += [
        "---",
        "",
        f"# SLU fine-tune of {base}",
        "",
        f"Scheme **{config.get('scheme')}** with {speech_percent_used(config):g} % of the training speech "
        f"({config.get('n_speech_used', '?')} recordings) on corpus **{corpus_name(config)}** "
        f"({config.get('language') or 'all languages'}), recipe {config.get('recipe')}{' without source data' if config.get('no_source') else ''}, seed {config.get('seed')}, "
        f"{config.get('epochs')} epochs.",
        "",
        "Schemes follow Choi et al., *Exploring fine-tuning of large audio language models for spoken language "
        "understanding under limited speech data* (section 2.2). The model answers with one line of JSON: "
        '`{"scenario": ..., "action": ..., "entities": [{"type": ..., "filler": ...}]}`.',
        "",
        f"Code version: `{config.get('code_version', 'unknown')}`.",
        "",
    ]
    if metrics:
        lines += ["| split | intent accuracy | entity F1 | SLU-F1 | n |", "|---|---|---|---|---|"]
        for name, m in metrics.items():
            lines.append(
                f"| {name} | {m.get('intent_accuracy', 0):.4f} | {m.get('entity_f1', 0):.4f} | "
                f"{m.get('slu_f1', 0):.4f} | {m.get('n_scored', '')} |"
            )
        lines.append("")
    lines += [
        "Load it with plain transformers:",
        "",
        "```python",
        "from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration",
        "model = Qwen2AudioForConditionalGeneration.from_pretrained(PATH)",
        "processor = AutoProcessor.from_pretrained(PATH)",
        "```",
        "",
    ]
    return "\n".join(lines)


def _source_language(config: Mapping[str, Any]) -> str:
    if config.get("no_source"):
        return ""
    if "source_language" in config:
        return config.get("source_language") or ""
    return config.get("language") or ""


def corpus_name(config: Mapping[str, Any]) -> str:
    """The corpus a run's rows and model card name: with ``corpus: prepared``, the corpus the prepared folder holds
    (slurp, italic, speech_massive, or a manifest's own name), read from its ``prepared.json``."""
    config = flat_record(config)
    name = config.get("corpus_name") or config.get("corpus") or ""
    path = (config.get("corpus_args") or {}).get("path") if name == "prepared" else None
    if path:
        from data.corpus import CorpusError
        from data.prepared import prepared_corpus_name

        try:
            return prepared_corpus_name(path)
        except CorpusError:
            return name
    return name


def speech_percent_used(config: Mapping[str, Any]) -> Any:
    """The speech share a run trained on: 0 for text-only runs, whatever ``speech_percent`` the YAML carried."""
    return 0.0 if config.get("scheme") == "text" else config.get("speech_percent")


def results_row(
    config: Mapping[str, Any],
    result_summary: Mapping[str, Any],
    *,
    split: str,
    language: str,
    oracle: bool,
    run_dir: str,
) -> dict[str, Any]:
    """One results.csv row; ``config`` is a recorded TrainConfig (nested, or the flat layout of older runs)."""
    config = flat_record(config)
    recipe = config.get("recipe", "mono")
    return {
        "corpus": corpus_name(config),
        "language": language,
        "scheme": "oracle" if oracle else config.get("scheme"),
        "recipe": recipe,
        # Cross-lingual rows name the source locale; an empty one marks the "No Source" row (target data only).
        "source_language": _source_language(config) if recipe != "mono" else "",
        "speech_percent": speech_percent_used(config),
        "n_speech": config.get("n_speech_used"),
        "seed": config.get("seed"),
        "split": split,
        **{k: v for k, v in result_summary.items() if k in SCORE_COLUMNS},
        "run_dir": run_dir,
    }
