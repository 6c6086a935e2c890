"""Evaluate a run, a model folder or the demo model: ``python -m training.evaluate RUN --split test [--oracle]``,
or on any manifest: ``python -m training.evaluate MODEL_OR_RUN --manifest FILE [--split test] [--json]``.

Loads ``RUN/model`` and the run's own config.json (same corpus, language, decoding settings), decodes the split,
and writes ``RUN/eval/<split>[-oracle]/metrics.json`` + ``predictions.jsonl`` and a results row.
``--oracle`` feeds the gold transcripts through the text path (the paper's upper bound, Table 2).
Options: ``--num_beams N``, ``--batch_size N``, ``--max_new_tokens N``, ``--results_csv FILE``. A run folder
copied elsewhere writes its row to the results table beside the copy, not to the original's.

With ``--manifest`` (a file in the user-manifest format, README "Bring your own data"), MODEL_OR_RUN may be a run
folder, a model folder (what ``save_model`` writes, e.g. ``RUN/model``) or ``demo`` (the embedded Mini-LALM); the
split's recordings are decoded (its transcripts with ``--oracle``, or when it has no audio), and
``OUT/metrics.json`` (overall; per speaker, engine and voice; for utterances with and without slots; per gold
intent) and ``OUT/predictions.jsonl`` (SLURP format) are written
to ``--out`` (default ``runs/eval/<model>-<manifest>-<split>``). ``--json`` prints the metrics as one JSON object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import sys
from pathlib import Path

from data.cli import run_cli
from training.config import ConfigError


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    *,
    oracle: bool = False,
    num_beams: int | None = None,
    batch_size: int | None = None,
    max_new_tokens: int | None = None,
    results_csv: str | None = None,
) -> dict:
    """Evaluate ``run_dir/model`` on ``split``; returns {eval folder name: metrics}."""
    from models.loading import ModelLoadError, load_model
    from training.loop import _Run, evaluate_sets, load_run_config
    from training.run_folder import read_json
    from training.sources import load_run_data

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    decoding = {
        k: v
        for k, v in (("num_beams", num_beams), ("batch_size", batch_size), ("max_new_tokens", max_new_tokens))
        if v is not None
    }
    changes = {
        "output_dir": str(run_dir),
        "resume": False,
        "data": dataclasses.replace(cfg.data, eval_splits=[split]),
        "decoding": dataclasses.replace(cfg.decoding, **decoding),
    }
    if results_csv is not None:
        changes["results_csv"] = results_csv
    moved = Path(cfg.output_dir).resolve() != run_dir.resolve()
    if moved and results_csv is None:
        # A copied or moved run: its config still names the original folder's results table.
        changes["results_csv"] = str(run_dir.resolve().parent / "results.csv")
    cfg = dataclasses.replace(cfg, **changes)
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} has no final model yet ({model_dir}); finish training with --resume first")
    run = _Run(cfg)
    run.meta = read_json(run_dir / "config.json")
    run.meta["config"] = cfg.to_dict()
    run.data = load_run_data(cfg)
    try:
        run.model, run.processor = load_model(model_dir, adapter=cfg.adapter, device=run.acc.device)
    except ModelLoadError as exc:
        raise ConfigError(str(exc)) from None
    return evaluate_sets(run, oracle=oracle, splits=[split])


def resolve_model(name: str | Path) -> Path:
    """A model folder from a run folder, a model folder or ``demo``; ConfigError naming what was expected."""
    if str(name) == "demo":
        from models.demo_assets import demo_model_dir

        return demo_model_dir()
    path = Path(name)
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
        return path
    raise ConfigError(
        f"{path} is neither a run folder (with model/) nor a model folder (config.json + "
        "*.safetensors); pass a run folder, RUN/model or demo"
    )


def _subset_scores(gold: dict, preds: dict, ids: list[str]) -> dict:
    from evaluation.metrics import score_keyed

    scores = score_keyed({i: gold[i] for i in ids}, {i: preds[i] for i in ids if i in preds})
    return {
        "n": len(ids),
        "intent_accuracy": scores.intent_accuracy,
        "entity_f1": scores.entity_f1,
        "slu_f1": scores.slu_f1,
    }


def evaluate_on_manifest(
    model_name: str | Path,
    manifest: str | Path,
    split: str = "test",
    *,
    oracle: bool = False,
    out: str | Path | None = None,
    num_beams: int = 3,
    batch_size: int = 16,
    max_new_tokens: int = 128,
    progress: bool = True,
) -> dict:
    """Decode ``split`` of a user manifest with a model; write metrics.json + predictions.jsonl; return metrics.

    The metrics hold the overall SLURP scores, and the same per speaker, per engine (the part of the speaker name
    before ":"; e.g. espeak / flite in the synthetic corpus) and per voice, so a held-out voice that fails stands
    out; for utterances without and with gold slots ("no_slots": commands such as "lights on", where the intent is
    all there is to get right); and per gold intent.
    """
    from data.corpus import CorpusError, load_corpus
    from data.synth_voices import voice_of_speaker
    from models.loading import ModelLoadError, load_model
    from training.evaluation import DecodeSettings, decode_and_score, eval_items, write_eval

    model_dir = resolve_model(model_name)
    try:
        corpus = load_corpus("manifest", path=str(manifest)).split(split)
    except (CorpusError, OSError) as exc:
        raise ConfigError(f"--manifest: {exc}") from None
    if not corpus.texts and not corpus.speech:
        raise ConfigError(f"{manifest} has no {split!r} rows; choose --split from its splits")
    try:
        model, processor = load_model(model_dir, device="cpu")
    except ModelLoadError as exc:
        raise ConfigError(str(exc)) from None
    items, gold = eval_items(corpus.texts, corpus.speech, oracle=oracle, split=split)
    decode = DecodeSettings(
        adapter="qwen2-audio",
        batch_size=batch_size,
        num_beams=num_beams,
        max_new_tokens=max_new_tokens,
        progress=progress,
    )
    res = decode_and_score(model, processor, items, gold, split=split, oracle=oracle or not items[0][1], decode=decode)
    preds = {p.id: p.frame for p in res.predictions}
    by_speaker: dict[str, list[str]] = {}
    by_slots: dict[str, list[str]] = {}
    by_intent: dict[str, list[str]] = {}
    for example, _ in items:
        by_speaker.setdefault(example.speaker or "unknown", []).append(example.id)
        by_slots.setdefault("with_slots" if gold[example.id].entities else "no_slots", []).append(example.id)
        by_intent.setdefault(gold[example.id].intent, []).append(example.id)
    by_engine: dict[str, list[str]] = {}
    by_voice: dict[str, list[str]] = {}
    for speaker, ids in by_speaker.items():
        by_engine.setdefault(speaker.split(":", 1)[0], []).extend(ids)
        by_voice.setdefault(voice_of_speaker(speaker), []).extend(ids)
    res.meta = {
        "model": str(model_dir),
        "manifest": str(manifest),
        "per_speaker": {k: _subset_scores(gold, preds, v) for k, v in sorted(by_speaker.items())},
        "per_engine": {k: _subset_scores(gold, preds, v) for k, v in sorted(by_engine.items())},
        "per_voice": {k: _subset_scores(gold, preds, v) for k, v in sorted(by_voice.items())},
        "per_slots": {k: _subset_scores(gold, preds, v) for k, v in sorted(by_slots.items())},
        "per_intent": {k: _subset_scores(gold, preds, v) for k, v in sorted(by_intent.items())},
    }
    name = f"{Path(str(model_name)).name}-{Path(str(manifest)).stem}-{split}{'-oracle' if oracle else ''}"
    out_dir = Path(out) if out else Path("runs") / "eval" / name
    write_eval(out_dir, res)
    return {"out": str(out_dir), "line": res.one_line(), **res.summary(), **res.meta}


@dataclass
class EvaluateConfig:
    run_dir: str = field(
        default="",
        metadata={
            "help": "a run folder written by python -m training.train (with --manifest: also a model folder or 'demo')",
            "positional": True,
            "required": True,
        },
    )
    manifest: str = field(
        default="", metadata={"help": "evaluate on this manifest (.jsonl/.csv) instead of the run's own corpus"}
    )
    out: str = field(default="", metadata={"help": "with --manifest: output folder"})
    json: bool = field(default=False, metadata={"help": "with --manifest: print the metrics as one JSON object"})
    split: str = field(default="test", metadata={"help": "split to evaluate"})
    oracle: bool = field(default=False, metadata={"help": "decode gold transcripts through the text path"})
    num_beams: int | None = field(default=None, metadata={"help": "beam width (default: the run's; 3 with --manifest)"})
    batch_size: int | None = field(
        default=None, metadata={"help": "generation batch (default: the run's; 16 with --manifest)"}
    )
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "generation cap (default: the run's; 96 with --manifest)"}
    )
    results_csv: str | None = field(default=None, metadata={"help": "results table to append to (default: the run's)"})


def main(argv: list[str] | None = None) -> int:
    return run_cli(
        _evaluate,
        EvaluateConfig,
        (ValueError, OSError),
        argv=argv,
        prog="python -m training.evaluate",
        description=__doc__.splitlines()[0],
    )


def _evaluate(args: EvaluateConfig) -> None:
    if args.manifest:
        import json

        res = evaluate_on_manifest(
            args.run_dir,
            args.manifest,
            args.split,
            oracle=args.oracle,
            out=args.out or None,
            num_beams=args.num_beams or 3,
            batch_size=args.batch_size or 16,
            max_new_tokens=args.max_new_tokens or 96,
            progress=not args.json,
        )
        if args.json:
            print(json.dumps(res))
        else:
            print(res["line"])
            worst = sorted(res["per_intent"].items(), key=lambda kv: (kv[1]["intent_accuracy"], kv[0]))[:5]
            for title, rows in (
                ("per engine", res["per_engine"].items()),
                ("per voice", res["per_voice"].items()),
                ("with and without slots", res["per_slots"].items()),
                ("the five worst intents", worst),
            ):
                print(f"{title}:")
                for key, s in rows:
                    print(f"  {key:40s} n={s['n']:4d}  intent {s['intent_accuracy']:.4f}  SLU-F1 {s['slu_f1']:.4f}")
            print(f"written: {res['out']}/metrics.json, predictions.jsonl")
        return
    evaluate_run(
        args.run_dir,
        args.split,
        oracle=args.oracle,
        num_beams=args.num_beams,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        results_csv=args.results_csv,
    )


if __name__ == "__main__":
    sys.exit(main())
