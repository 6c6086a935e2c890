"""Build the embedded demo from nothing: corpus, alignment pre-training, the paper's grid in miniature, checkpoints.

    python -m training.demo --work runs/demo-build --export demo          # the shipped demo (~1 h on 2 cores)
    python -m training.demo --work /tmp/d --export /tmp/d/demo --scale 0.03 --size tiny --quick   # a minute

Stages (each skipped when its output exists, so a killed build resumes where it stopped):

1. corpus: ``python -m data.synth --preset demo`` (espeak-ng and flite voices; test voices held out);
2. alignment: ``python -m training.pretrain`` (transcription + repetition; no SLU label seen);
3. sweep: ``python -m training.sweep --config configs/mini_cpu.yaml`` over text-only, direct mixing and
   curriculum at several speech levels and seeds, ``--parallel`` cells at a time, merged into one
   ``results.csv`` and ``report.md`` (mean +- 95% CI, daggers);
4. export: the best run (highest test SLU-F1), a text-only run and a low-speech curriculum run, each with its model
   (float16), config, curves and evaluations, re-scored from the exported weights on the held-out test voices and
   on the never-seen sentences (per voice), plus example clips of held-out voices, into ``--export``.

Progress bars come from each stage; the time each stage took is written to ``EXPORT/build.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from data.textio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


class DemoError(RuntimeError):
    """The demo cannot be built as asked; the message says why."""


@dataclass
class DemoConfig:
    work: str = field(default="runs/demo-build", metadata={"help": "working folder (corpus, base model, sweep)"})
    export: str = field(default="demo", metadata={"help": "folder to write the demo checkpoints and clips to"})
    scale: float = field(default=1.0, metadata={"help": "corpus size factor (1.0: ~4,000 training clips)"})
    size: str = field(default="mini", metadata={"help": "model size: mini (~4M parameters) or tiny (tests)"})
    encoder_epochs: int = field(default=6, metadata={"help": "alignment: encoder-only character CTC epochs"})
    pretrain_epochs: int = field(default=6, metadata={"help": "alignment: transcription + repetition epochs"})
    pretrain_lr: float = field(default=1.5e-3, metadata={"help": "alignment: peak learning rate with the LLM"})
    ctc_weight: float = field(default=0.5, metadata={"help": "alignment: character CTC weight with the LLM"})
    align_prompt: str = field(
        default="separate", metadata={"help": "alignment instructions (training/pretrain.py): separate or shared"}
    )
    slu_target: str = field(
        default="transcript+frame",
        metadata={"help": "the SLU answer layout (models/prompt.py): transcript+frame, or frame (the paper's)"},
    )
    schemes: str = field(default="text,direct,curriculum", metadata={"help": "schemes of the sweep"})
    speech_percent: str = field(default="2,10,100", metadata={"help": "speech levels of the sweep (0 = text-only)"})
    seeds: str = field(default="1,2", metadata={"help": "seeds of the sweep"})
    parallel: int = field(default=2, metadata={"help": "sweep cells at once (one thread each)"})
    epochs: int = field(default=3, metadata={"help": "SLU fine-tuning epochs (the paper: 3)"})
    quick: bool = field(default=False, metadata={"help": "test mode: tiny evaluations, 1 beam"})
    n_clips: int = field(default=8, metadata={"help": "example clips exported"})


def _run(cmd: list[str], log: Path | None = None, env: dict[str, str] | None = None) -> None:
    print("$ " + " ".join(cmd), flush=True)
    env = {**os.environ, **(env or {})}
    if log is None:
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    else:
        with open(log, "ab") as fh:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        raise DemoError(f"stage failed (exit {rc}): {' '.join(cmd)}" + (f"; see {log}" if log else ""))


def stage_corpus(cfg: DemoConfig, work: Path) -> Path:
    manifest = work / "corpus" / "manifest.jsonl"
    if not manifest.is_file():
        _run(
            [
                sys.executable,
                "-m",
                "data.synth",
                "--preset",
                "demo",
                "--out",
                str(work / "corpus"),
                "--scale",
                str(cfg.scale),
                "--seed",
                "0",
            ]
        )
    return manifest


def stage_pretrain(cfg: DemoConfig, work: Path, manifest: Path) -> Path:
    base = work / "base" / "model"
    extra = manifest.parent / "alignment.jsonl"  # the corpus's alignment-only clips (data/synth_demo.py)
    if not (base / "config.json").is_file():
        if not extra.is_file():
            print(
                f"note: {extra} not found (a corpus made by an older version): alignment hears only the SLU "
                "training clips; delete the corpus folder to remake it with them",
                flush=True,
            )
        _run(
            [
                sys.executable,
                "-m",
                "training.pretrain",
                "--manifest",
                str(manifest),
                "--out",
                str(work / "base"),
                "--encoder-epochs",
                str(cfg.encoder_epochs),
                "--epochs",
                str(cfg.pretrain_epochs),
                "--peak-lr",
                str(cfg.pretrain_lr),
                "--repeat-share",
                "0.5",
                "--size",
                cfg.size,
                "--resume",
                "--ctc-weight",
                str(cfg.ctc_weight),
                "--slu-target",
                cfg.slu_target,
                "--align-prompt",
                cfg.align_prompt,
                "--eval-examples",
                "8" if cfg.quick else "48",
                *(["--alignment-manifest", str(extra)] if extra.is_file() else []),
            ]
        )
    return base


def _sweep_flags(cfg: DemoConfig, base: Path, manifest: Path) -> list[str]:
    flags = [
        "--config",
        "configs/mini_cpu.yaml",
        "--model",
        str(base),
        "--corpus_args.path",
        str(manifest),
        "--epochs",
        str(cfg.epochs),
        "--schemes",
        cfg.schemes,
        "--speech-percent",
        cfg.speech_percent,
        "--oracle",
    ]
    if cfg.quick:
        flags += [
            "--num_beams",
            "1",
            "--eval_max_examples",
            "4",
            "--max_new_tokens",
            "24",
            "--per_device_batch_size",
            "8",
            "--save_every_steps",
            "0",
        ]
    return flags


def stage_sweep(cfg: DemoConfig, work: Path, base: Path, manifest: Path) -> Path:
    """The grid, one seed after another, each seed's cells ``--parallel`` at a time (training.sweep's local executor,
    one thread per cell), then one merged results table and report."""
    from evaluation.results import append_results, read_results
    from training.sweep import write_report

    seeds = [s.strip() for s in cfg.seeds.split(",") if s.strip()]
    flags = _sweep_flags(cfg, base, manifest)
    env = {}
    if cfg.parallel > 1:
        flags += ["--executor", "local", "--max-parallel", str(cfg.parallel)]
        env["OMP_NUM_THREADS"] = "1"  # inherited by the cells: one core each
    for seed in seeds:
        out = work / f"sweep-s{seed}"
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "training.sweep", *flags, "--seeds", seed, "--out", str(out)]
        print(f"(log: {out / 'sweep.log'})", flush=True)
        try:
            _run(cmd, log=out / "sweep.log", env=env)
        except DemoError:
            raise DemoError(f"sweep for seed {seed} failed; see {out / 'sweep.log'} (rerun to resume)") from None
        print(f"sweep {out.name} finished", flush=True)
    merged = work / "sweep"
    merged.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        table = work / f"sweep-s{seed}" / "results.csv"
        for row in read_results(table):
            row = dict(row)
            row["run_dir"] = str((table.parent / row["run_dir"]).resolve())
            rows.append(row)
    (merged / "results.csv").unlink(missing_ok=True)
    append_results(merged / "results.csv", rows)
    write_report(merged)
    return merged


def _best(rows: list[dict], **want) -> dict | None:
    pool = [r for r in rows if all(str(r.get(k)) == str(v) for k, v in want.items()) and r["scheme"] != "oracle"]
    return max(pool, key=lambda r: float(r["slu_f1"])) if pool else None


def _export_model(src: Path, dst: Path) -> None:
    """The model folder with float16 weights (half the size; outputs checked after export)."""
    import torch

    from models.loading import load_model, save_model

    model, processor = load_model(src, device="cpu")
    save_model(model.to(torch.float16), processor, dst)


def stage_export(cfg: DemoConfig, work: Path, sweep: Path, manifest: Path) -> Path:
    from training.evaluate import evaluate_on_manifest
    from evaluation.results import read_results

    rows = [dict(r) for r in read_results(sweep / "results.csv")]
    rows = [r for r in rows if r.get("split") == "test"]
    picks = {
        "best": _best([r for r in rows if r["scheme"] in ("direct", "curriculum")]),
        "text-only": _best(rows, scheme="text"),
        "low-speech": _best(
            rows,
            scheme="curriculum",
            speech_percent=min((float(r["speech_percent"]) for r in rows if r["scheme"] == "curriculum"), default=-1),
        ),
    }
    export = Path(cfg.export)
    tmp = export.with_name(f".{export.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "runs").mkdir(parents=True)
    novel = manifest.with_name("novel.jsonl")
    scored = {}
    for name, row in picks.items():
        if row is None:
            continue
        run = Path(row["run_dir"])
        dst = tmp / "runs" / name
        _export_model(run / "model", dst / "model")
        for f in ("config.json", "curves.csv", "README.md"):
            if (run / f).is_file():
                shutil.copy2(run / f, dst / f)
        sets = [("test", manifest, False)] + ([("novel", novel, False)] if novel.is_file() else [])
        if name == "best":  # the text side's ceiling: the gold transcripts of the test clips through the text path
            sets.append(("test-oracle", manifest, True))
        scored[name] = {"source_run": run.name}
        for label, mf, oracle in sets:
            res = evaluate_on_manifest(
                dst,
                mf,
                "test",
                oracle=oracle,
                out=dst / "eval" / label,
                num_beams=1 if cfg.quick else 3,
                progress=False,
            )
            keys = ("intent_accuracy", "entity_f1", "slu_f1", "n_invalid", "per_engine", "per_voice", "per_slots")
            scored[name][label] = {k: res[k] for k in keys}
            print(f"{name} on {label}: {res['line']}", flush=True)
    _export_clips(cfg, tmp, manifest, scored)
    for f in ("results.csv", "report.md"):
        if (sweep / f).is_file():
            shutil.copy2(sweep / f, tmp / f)
    (tmp / "scores.json").write_text(json.dumps(scored, indent=2) + "\n")
    if (tmp / "results.csv").is_file():
        from training.plots import scheme_curves_svg
        from evaluation.results import read_results as _read

        try:
            (tmp / "slu_f1_vs_speech.svg").write_text(
                scheme_curves_svg(
                    _read(tmp / "results.csv"), title="Mini-LALM: test SLU-F1 vs speech (held-out voices)"
                )
            )
        except ValueError as exc:
            print(f"plot skipped: {exc}", flush=True)
    (tmp / "SCORES.md").write_text(scores_markdown(scored))
    old = export.with_name(f".{export.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if export.exists():
        export.rename(old)  # the previous demo stays whole until the new one is in place
    tmp.rename(export)
    shutil.rmtree(old, ignore_errors=True)
    return export


def scores_markdown(scored: dict) -> str:
    """The exported checkpoints' scores as Markdown tables: overall, then per engine, on each held-out set."""
    lines = [
        "# Demo checkpoints: scores of the exported (float16) weights",
        "",
        "The held-out voices' sets (test: new sentences of the training templates, and training commands such as "
        '"lights on" said by new voices; novel: sentences never seen in any form; test-oracle: the test clips\' '
        "gold transcripts through the text path, the text side's ceiling). Beam 3.",
        "",
        "| checkpoint | source run | set | intent acc | entity F1 | SLU-F1 | invalid outputs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, info in scored.items():
        for label in ("test", "novel", "test-oracle"):
            if label in info:
                m = info[label]
                lines.append(
                    f"| {name} | {info.get('source_run', '')} | {label} | {m['intent_accuracy']:.4f} | "
                    f"{m['entity_f1']:.4f} | {m['slu_f1']:.4f} | {m['n_invalid']} |"
                )
    lines += [
        "",
        "Per engine and voice (best checkpoint, test):",
        "",
        "| voice | n | intent acc | SLU-F1 |",
        "|---|---|---|---|",
    ]
    best = scored.get("best", {}).get("test", {})
    for voice, m in sorted(best.get("per_voice", {}).items()):
        lines.append(f"| {voice} | {m['n']} | {m['intent_accuracy']:.4f} | {m['slu_f1']:.4f} |")
    if best.get("per_slots"):
        lines += [
            "",
            "Utterances without and with slots (best checkpoint, test; no_slots: commands, the intent is all there is "
            "to get right):",
            "",
            "| utterances | n | intent acc | SLU-F1 |",
            "|---|---|---|---|",
        ]
        for kind, m in sorted(best["per_slots"].items()):
            lines.append(f"| {kind} | {m['n']} | {m['intent_accuracy']:.4f} | {m['slu_f1']:.4f} |")
    return "\n".join(lines) + "\n"


def _export_clips(cfg: DemoConfig, tmp: Path, manifest: Path, scored: dict) -> None:
    """Example clips of the held-out test voices: a seeded draw, one speaker after another, among the clips the
    best model parses exactly (the share it parses exactly over the whole test set is in scores.json)."""
    import random

    best_preds = tmp / "runs" / "best" / "eval" / "test" / "predictions.jsonl"
    correct = set()
    rows = [json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines() if x.strip()]
    test = [r for r in rows if r.get("split") == "test" and r.get("audio")]
    if best_preds.is_file():
        gold = {
            r["id"]: (r["scenario"], r["action"], sorted((e["type"], e["filler"]) for e in r.get("entities", [])))
            for r in test
        }
        for line in best_preds.read_text(encoding="utf-8").splitlines():
            p = json.loads(line)
            key = (p.get("scenario"), p.get("action"), sorted((e["type"], e["filler"]) for e in p.get("entities", [])))
            if gold.get(p["file"]) == key:
                correct.add(p["file"])
        scored.setdefault("best", {})["test_exact_match"] = len(correct) / max(len(test), 1)
    random.Random(0).shuffle(test)
    by_speaker: dict[str, list[dict]] = {}
    for r in test:
        if r["id"] in correct:
            by_speaker.setdefault(r.get("speaker", ""), []).append(r)
    chosen: list[dict] = []
    while len(chosen) < cfg.n_clips and any(by_speaker.values()):
        for speaker in sorted(by_speaker):
            if by_speaker[speaker] and len(chosen) < cfg.n_clips:
                chosen.append(by_speaker[speaker].pop(0))
    clips = tmp / "examples"
    (clips / "audio").mkdir(parents=True, exist_ok=True)
    lines = []
    import soundfile as sf

    for r in chosen:
        src = manifest.parent / r["audio"]
        name = src.with_suffix(".flac").name  # lossless, about half the size of the WAV (the demo ships in git)
        wave, rate = sf.read(src, dtype="int16")
        sf.write(clips / "audio" / name, wave, rate, subtype="PCM_16")
        row = {
            k: r[k]
            for k in (
                "id",
                "transcript",
                "split",
                "language",
                "scenario",
                "action",
                "entities",
                "speaker",
                "duration_s",
            )
            if k in r
        }
        lines.append(json.dumps({**row, "audio": f"audio/{name}"}))
    # The user-manifest format (data/manifest.py): the app reads it for its example clips.
    (clips / "manifest.jsonl").write_text("".join(x + "\n" for x in lines))


# Wall seconds per item on a 2-core machine, measured in the build of the shipped demo (demo/README.md): alignment
# runs alone (two threads), sweep cells two at a time (one thread each). The estimate printed at the start of a build
# scales them.
SEC_PER_LISTEN_CLIP = 0.0095  # an encoder-only CTC epoch, per clip (alignment runs alone: 2 threads)
SEC_PER_ALIGN_CLIP = 0.025  # a transcription + repetition epoch, per clip (alone: 2 threads)
SEC_PER_SLU_TEXT = 0.033  # an SLU training example given as text
SEC_PER_SLU_SPEECH = 0.075  # an SLU training example given as speech
SEC_PER_DECODE = 0.12  # one evaluated item, greedy (the grid's test set and the curves' dev items)


def estimate_seconds(
    cfg: DemoConfig, n_clips: int, n_texts: int, n_test: int, n_recordings: int, n_align: int = 0
) -> dict[str, float]:
    """The stages' expected wall time on 2 CPU cores for a corpus of ``n_clips`` training recordings (plus
    ``n_align`` heard by alignment only), ``n_texts`` training sentences (spoken and text-only), ``n_test`` test clips
    and ``n_recordings`` to synthesise."""
    from data.synth_demo import SEC_PER_RECORDING

    levels = [float(x) / 100 for x in cfg.speech_percent.split(",") if x.strip()]
    schemes = [x.strip() for x in cfg.schemes.split(",") if x.strip()]
    speech_runs = [p for s in schemes if s != "text" for p in levels if p > 0]
    n_runs = len(speech_runs) + ("text" in schemes)
    train = n_runs * cfg.epochs * n_texts * SEC_PER_SLU_TEXT
    train += sum(cfg.epochs * p * n_clips for p in speech_runs) * SEC_PER_SLU_SPEECH
    decode = (n_runs * (n_test + cfg.epochs * 64) + n_test / 2) * SEC_PER_DECODE
    n_seeds = len([x for x in cfg.seeds.split(",") if x.strip()])
    waves = n_seeds / max(min(cfg.parallel, n_runs), 1)  # a seed's cells run --parallel at a time
    return {
        "corpus_s": n_recordings * SEC_PER_RECORDING / 2,
        "alignment_s": (n_clips + n_align)
        * (cfg.encoder_epochs * SEC_PER_LISTEN_CLIP + cfg.pretrain_epochs * SEC_PER_ALIGN_CLIP),
        "sweep_s": waves * (train + decode),
        "export_s": (3 * (n_test + 100) + n_test / 2) * SEC_PER_DECODE * 1.2,  # + the best on gold transcripts
    }


def print_estimate(cfg: DemoConfig, work: Path) -> None:
    """One line before the build starts: the expected time per stage, and in all (stages found done are skipped)."""
    from data.synth_demo import plan

    p = plan(0, cfg.scale)
    clips = [r for r in p.recordings if r.text.split == "train"]
    texts = [t for t in p.texts if t.split == "train"]
    test = [r for r in p.recordings if r.text.split == "test"]
    n_rec = len(p.recordings) + len(p.novel_recordings) + len(p.align_recordings)
    est = estimate_seconds(cfg, len(clips), len(texts), len(test), n_rec, len(p.align_recordings))
    done = {
        "corpus_s": (work / "corpus" / "manifest.jsonl").is_file(),
        "alignment_s": (work / "base" / "model" / "config.json").is_file(),
    }
    parts = [f"{k[:-2]} {v / 60:.0f} min" + (" (done)" if done.get(k) else "") for k, v in est.items()]
    total = sum(v for k, v in est.items() if not done.get(k))
    print(
        f"estimated wall time on 2 CPU cores (the mini size; tiny is faster): {', '.join(parts)}; "
        f"about {total / 60:.0f} min to go",
        flush=True,
    )


def build(cfg: DemoConfig) -> Path:
    work = Path(cfg.work)
    work.mkdir(parents=True, exist_ok=True)
    print_estimate(cfg, work)
    times = {}
    t = time.time()
    manifest = stage_corpus(cfg, work)
    times["corpus_s"] = round(time.time() - t, 1)
    t = time.time()
    base = stage_pretrain(cfg, work, manifest)
    times["alignment_s"] = round(time.time() - t, 1)
    t = time.time()
    sweep = stage_sweep(cfg, work, base, manifest)
    times["sweep_s"] = round(time.time() - t, 1)
    t = time.time()
    export = stage_export(cfg, work, sweep, manifest)
    times["export_s"] = round(time.time() - t, 1)
    atomic_write_text(
        export / "build.json", json.dumps({"config": cfg.__dict__, "stage_seconds": times}, indent=2) + "\n"
    )
    atomic_write_text(export / "README.md", demo_readme(cfg, times, work, export))
    print(json.dumps(times), flush=True)
    return export


def _stage_times(times: dict, work: Path) -> dict:
    """Stage wall times; the corpus and alignment stages' from their own records (summary.json, pretrain.json) when
    this build found them done."""
    out = dict(times)
    summary = work / "corpus" / "summary.json"
    if out.get("corpus_s", 0) < 1 and summary.is_file():
        out["corpus_s"] = float(json.loads(summary.read_text()).get("seconds", 0.0))
    record = work / "base" / "pretrain.json"
    if out.get("alignment_s", 0) < 1 and record.is_file():
        out["alignment_s"] = float(json.loads(record.read_text()).get("seconds", 0.0))
    return out


def demo_readme(cfg: DemoConfig, times: dict, work: Path, export: Path) -> str:
    """How the exported demo was made: the command, the corpus, the alignment stage's history, the time per stage,
    and the scores of the exported checkpoints (SCORES.md)."""
    flags = " ".join(
        f"--{k.replace('_', '-')} {v}"
        for k, v in cfg.__dict__.items()
        if k not in ("work", "export") and v != getattr(DemoConfig(), k)
    )
    lines = [
        "# The embedded demo: Mini-LALM checkpoints",
        "",
        "Made from nothing by this project's own code on CPU, with:",
        "",
        f"    python -m training.demo --work WORK --export {export.name} {flags}".rstrip(),
        "",
        "Stages and wall time on the machine that built it (seconds; a stage found done is taken from its "
        "own record when it has one): "
        + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in _stage_times(times, work).items())
        + ".",
        "",
    ]
    summary = work / "corpus" / "summary.json"
    if summary.is_file():
        info = json.loads(summary.read_text())
        train = info.get("splits", {}).get("train", {})
        lines += [
            f"Corpus (`python -m data.synth --preset demo`): {info.get('recordings')} recordings, "
            f"{info.get('hours')} h, {info.get('scenarios')} scenarios, {info.get('intents')} intents; "
            f"training: {train.get('recordings')} clips of {train.get('texts')} sentences by "
            f"{info.get('train_voices')} voices, plus {info.get('text_only_train_texts', 0)} labelled training "
            "sentences that are never spoken (text-only rows: the plentiful text of the paper's setting), and "
            f"{info.get('splits', {}).get('alignment', {}).get('recordings', 0)} transcribed clips heard only by "
            "the alignment stage (alignment.jsonl: sentences no spoken SLU set holds; some are text-only rows). "
            "Test speech comes only from voices that never spoke a "
            "training clip: " + ", ".join(sorted(info.get("held_out_recordings", {}))) + ".",
            "",
        ]
    history = work / "base" / "pretrain.json"
    if history.is_file():
        info = json.loads(history.read_text())
        last = info["history"][-1]
        listen = [h for h in info["history"] if h.get("stage") == "listen"]
        lines += [
            f"Alignment (`python -m training.pretrain`, {info['parameters'] / 1e6:.2f}M parameters, no SLU "
            f"label seen): {len(listen)} encoder-only epochs of character CTC, then "
            f"{len(info['history']) - len(listen)} epochs of transcription + repetition. On dev clips at the "
            f"end: transcription WER {last.get('dev_wer', float('nan')):.3f}, CTC character error rate "
            f"{last.get('dev_cer_ctc', float('nan')):.3f}."
            + (
                f" On {info['test']['clips']} test clips of the held-out voices: WER {info['test']['wer']:.3f}, "
                f"CTC character error rate {info['test'].get('cer_ctc', float('nan')):.3f}."
                if "test" in info
                else ""
            ),
            "",
        ]
    lines += [
        "Checkpoints: `runs/best` (highest test SLU-F1 of the sweep), `runs/text-only` (best text-only run) and "
        "`runs/low-speech` (curriculum at the lowest speech level), float16. Their scores on the held-out "
        "voices are in SCORES.md, the sweep's table in report.md and results.csv, and SLU-F1 versus speech "
        "level in slu_f1_vs_speech.svg.",
        "",
        "These models learned from synthetic voices (espeak-ng, flite) reading sentences of a fixed domain. "
        "How well they parse such clips is in SCORES.md; expect them to fail on a real human voice through a "
        "real microphone. For "
        "that, fine-tune Qwen2-Audio-7B-Instruct on real speech (see the project README).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The CLI: flags from DemoConfig; our errors become one ``error:`` line and exit status 2."""
    from data.cli import run_cli

    return run_cli(
        lambda cfg: print(build(cfg)),
        DemoConfig,
        (DemoError,),
        argv=argv,
        prog="python -m training.demo",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(main())
