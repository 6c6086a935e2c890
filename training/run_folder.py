"""The run folder: its layout, config.json with the code version, curves.csv, the model card, the results row.

    <run>/config.json            the TrainConfig + code version + phases + data counts (enough to reproduce)
    <run>/curves.csv             training loss and dev scores by optimizer step (the app's score curves)
    <run>/checkpoints/step-N/    resumable state (removed when the run completes unless asked to keep it)
    <run>/model/                 final weights in Hugging Face format + processor + README.md (model card)
    <run>/lora_adapter/          the LoRA adapter before merging (LoRA runs only)
    <run>/eval/<name>/           metrics.json + predictions.jsonl per evaluated split (and language / oracle)
    <run>/done.json              written last: the run finished; sweeps skip it
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

from training.results import atomic_write_text

CURVE_COLUMNS = ("step", "epoch", "phase", "kind", "split", "loss", "lr", "intent_accuracy", "entity_f1", "slu_f1",
                 "n")
DONE = "done.json"


def code_version() -> str:
    """The git commit of the project (with ``-dirty`` when files differ), or ``unknown`` outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_curves(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CURVE_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def read_curves(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key in ("step", "n"):
            row[key] = int(row[key]) if row.get(key) not in (None, "") else None
        for key in ("epoch", "loss", "lr", "intent_accuracy", "entity_f1", "slu_f1"):
            row[key] = float(row[key]) if row.get(key) not in (None, "") else None
    return rows


def model_card(config: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """A Hugging Face model card: YAML front matter (base model, metrics) and a short description."""
    base = config.get("model", "")
    lines = ["---", "library_name: transformers", "pipeline_tag: audio-text-to-text", "tags:",
             "- spoken-language-understanding", "- slurp", "- lalm-slu"]
    if base and base != "tiny" and not Path(str(base)).exists():
        lines += [f"base_model: {base}"]
    if metrics:
        lines += ["model-index:", f"- name: {Path(str(config.get('output_dir', 'run'))).name}", "  results:"]
        for name, m in metrics.items():
            lines += ["  - task:", "      type: spoken-language-understanding",
                      "    dataset:", f"      name: {config.get('corpus')} {name}", f"      type: {config.get('corpus')}",
                      "    metrics:"]
            for key in ("intent_accuracy", "entity_f1", "slu_f1"):
                if key in m:
                    lines += [f"    - type: {key}", f"      value: {float(m[key]):.4f}"]
    lines += ["---", "", f"# SLU fine-tune of {base}", "",
              f"Scheme **{config.get('scheme')}** with {config.get('speech_percent')} % of the training speech "
              f"({config.get('n_speech_used', '?')} recordings) on corpus **{config.get('corpus')}** "
              f"({config.get('language') or 'all languages'}), recipe {config.get('recipe')}{' without source data' if config.get('no_source') else ''}, seed {config.get('seed')}, "
              f"{config.get('epochs')} epochs.",
              "",
              "Schemes follow Choi et al., *Exploring fine-tuning of large audio language models for spoken language "
              "understanding under limited speech data* (section 2.2). The model answers with one line of JSON: "
              '`{"scenario": ..., "action": ..., "entities": [{"type": ..., "filler": ...}]}`.', "",
              f"Code version: `{config.get('code_version', 'unknown')}`.", ""]
    if metrics:
        lines += ["| split | intent accuracy | entity F1 | SLU-F1 | n |", "|---|---|---|---|---|"]
        for name, m in metrics.items():
            lines.append(f"| {name} | {m.get('intent_accuracy', 0):.4f} | {m.get('entity_f1', 0):.4f} | "
                         f"{m.get('slu_f1', 0):.4f} | {m.get('n_scored', '')} |")
        lines.append("")
    lines += ["Load it with plain transformers:", "", "```python",
              "from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration",
              "model = Qwen2AudioForConditionalGeneration.from_pretrained(PATH)",
              "processor = AutoProcessor.from_pretrained(PATH)", "```", ""]
    return "\n".join(lines)


def _source_language(config: Mapping[str, Any]) -> str:
    if config.get("no_source"):
        return ""
    if "source_language" in config:
        return config.get("source_language") or ""
    return config.get("language") or ""


def results_row(config: Mapping[str, Any], result_summary: Mapping[str, Any], *, split: str, language: str,
                oracle: bool, run_dir: str) -> dict[str, Any]:
    recipe = config.get("recipe", "mono")
    return {
        "corpus": config.get("corpus_name") or config.get("corpus"),
        "language": language,
        "scheme": "oracle" if oracle else config.get("scheme"),
        "recipe": recipe,
        # Cross-lingual rows name the source locale; an empty one marks the "No Source" row (target data only).
        "source_language": _source_language(config) if recipe != "mono" else "",
        "speech_percent": config.get("speech_percent"),
        "n_speech": config.get("n_speech_used"),
        "seed": config.get("seed"),
        "split": split,
        **{k: v for k, v in result_summary.items() if k in {
            "intent_accuracy", "scenario_accuracy", "action_accuracy", "entity_f1", "word_f1", "char_f1", "slu_f1",
            "slu_precision", "slu_recall", "n_scored", "n_missing", "n_invalid"}},
        "run_dir": run_dir,
    }
