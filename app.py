"""The LALM-SLU app: speak and see the parsed intent and slots, compare checkpoints, plan data collection.

    python app.py                                   # embedded demo model, no downloads
    python app.py --checkpoints runs/a/model,runs/b/model --runs-dir runs --results runs/results.csv
    python app.py --checkpoints Qwen/Qwen2-Audio-7B-Instruct   # real weights (hub id or local folder)

Tabs: "Parse speech" (microphone or upload, or a typed transcript through the text path), "Compare checkpoints"
(the same clip through two checkpoints side by side, with their dev score curves), "Plan data collection" (the
planner's target and budget modes with plots). Nothing heavy happens at import; models load on first use.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

DEMO = "demo"  # the embedded default: the untrained tiny twin of Qwen2-Audio (models/tiny.py), built in memory


@dataclass
class AppConfig:
    checkpoints: str = field(default=DEMO, metadata={"help": "comma-separated checkpoints: 'demo', hub ids, folders"})
    runs_dir: str = field(default="runs", metadata={"help": "folder searched for run folders (training outputs)"})
    results: str = field(default="", metadata={"help": "results table CSV for the planner (default: paper curves)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to serve on (127.0.0.1 = this machine only)"})
    port: int = field(default=7860, metadata={"help": "port to serve on"})
    num_beams: int = field(default=3, metadata={"help": "beam size for decoding (the paper uses 3)"})

    def __post_init__(self) -> None:
        if not self.checkpoint_list():
            raise ValueError("--checkpoints is empty: give 'demo', a hub id or a checkpoint folder")
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {self.port}")
        if self.num_beams < 1:
            raise ValueError(f"--num_beams must be >= 1, got {self.num_beams}")

    def checkpoint_list(self) -> list[str]:
        return [c.strip() for c in self.checkpoints.split(",") if c.strip()]


# ---------------------------------------------------------------------------------------------------- models


class ModelPool:
    """Loads each checkpoint once, on first use."""

    def __init__(self, num_beams: int = 3):
        self._models: dict[str, tuple[Any, Any]] = {}
        self.num_beams = num_beams

    def get(self, name: str) -> tuple[Any, Any]:
        if name not in self._models:
            if name == DEMO:
                from models.tiny import build_tiny

                self._models[name] = build_tiny(seed=0)
            else:
                from models.loading import load_model

                self._models[name] = load_model(name)
        return self._models[name]

    def parse(self, name: str, *, audio: Any = None, transcript: str = "") -> dict[str, Any]:
        """Parse one clip (a (rate, samples) pair or a path) or a typed transcript into a frame."""
        from data.audio import load_audio, to_wav_bytes
        from data.example import AudioRef, SLUExample
        from data.frames import NONE_FRAME
        from models.decode import generate_frames

        if audio is None and not transcript.strip():
            raise ValueError("record or upload a clip, or type a transcript")
        ref = None
        if audio is not None:
            wave = load_audio(audio)  # mono float32 16 kHz, or AudioError naming the problem
            ref = AudioRef(data=to_wav_bytes(wave), duration_s=len(wave) / 16000)
        example = SLUExample(
            id="input", corpus="app", language="", split="test", transcript=transcript.strip(), frame=NONE_FRAME,
            audio=ref,
        )
        model, processor = self.get(name)
        (pred,) = generate_frames(
            model, processor, [(example, ref is not None)], batch_size=1, num_beams=self.num_beams, progress=False
        )
        return {
            "checkpoint": name,
            "input": "speech" if ref is not None else "transcript",
            "frame": pred.frame.to_dict(),
            "intent": pred.frame.intent,
            "entities": [[e.type, e.filler] for e in pred.frame.entities],
            "status": pred.parse.status.value,
            "raw": pred.text,
        }


# ------------------------------------------------------------------------------------------------- run folders


def find_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """Run folders below ``runs_dir``: folders holding both a config.json and a curves.csv."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob("config.json") if (p.parent / "curves.csv").is_file())


def curves_figure(run_dirs: list[str], metric: str = "slu_f1"):
    """Dev score (and training loss) against optimizer step for each run, one line per run."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from training.run_folder import read_curves

    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"dev {metric}", "training loss"))
    for run in run_dirs:
        rows = read_curves(Path(run) / "curves.csv")
        evals = [r for r in rows if r.get("kind") == "eval" and r.get(metric) is not None]
        losses = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
        name = Path(run).name
        fig.add_trace(go.Scatter(x=[r["step"] for r in evals], y=[r[metric] for r in evals], mode="lines+markers",
                                 name=f"{name}: {metric}"), row=1, col=1)
        fig.add_trace(go.Scatter(x=[r["step"] for r in losses], y=[r["loss"] for r in losses], mode="lines",
                                 name=f"{name}: loss"), row=1, col=2)
    fig.update_xaxes(title_text="optimizer step")
    fig.update_layout(height=380, margin={"t": 40, "b": 40})
    return fig


def run_model_path(choice: str) -> str:
    """A run folder's final model if it has one; anything else (demo, hub id, model folder) is used as given."""
    path = Path(choice)
    return str(path / "model") if (path / "model" / "config.json").is_file() else choice


# ------------------------------------------------------------------------------------------------------ planner


def plan_target(results: str, language: str, target: float, share: bool, risk: float, avg_seconds: float,
                cost_per_hour: float):
    """The planner's target mode: (recommendation as a dict, plotly figure of the curves with the amount marked)."""
    from planner.__main__ import RecommendConfig, load_input, load_library, select
    from planner.plots import plot_curves
    from planner.target import recommend

    cfg = RecommendConfig(results=results, reference=not results, language=language, target=target, share=share,
                          risk=risk, avg_seconds=avg_seconds or None, cost_per_hour=cost_per_hour or None)
    curves = load_input(cfg)
    chosen = select(curves, language)
    library = load_library(cfg, curves)
    fits = [library.fit(c) for c in chosen]
    rec = recommend(fits, target=target, share=share, risk=risk, avg_seconds=cfg.avg_seconds,
                    cost_per_hour=cfg.cost_per_hour, language=language)
    return rec.to_dict(), plot_curves(fits, rec, title=f"{language}: SLU-F1 vs paired speech")


# ---------------------------------------------------------------------------------------------------------- UI


def _error_box(err: Exception) -> str:
    return f"**Could not do that:** {err}"


def parse_tab(pool: ModelPool, checkpoints: list[str]):
    import gradio as gr

    with gr.Tab("Parse speech"):
        gr.Markdown("Record or upload a clip (any rate or channel count; up to 30 s), or type a transcript to use "
                    "the text path. The model answers with a scenario, an action and entities.")
        with gr.Row():
            with gr.Column():
                ckpt = gr.Dropdown(checkpoints, value=checkpoints[0], label="checkpoint", allow_custom_value=True)
                audio = gr.Audio(sources=["microphone", "upload"], type="numpy", label="speech")
                text = gr.Textbox(label="or a transcript (used when no clip is given)")
                go_btn = gr.Button("Parse", variant="primary")
            with gr.Column():
                intent = gr.Textbox(label="intent (scenario_action)")
                entities = gr.Dataframe(headers=["type", "filler"], label="entities", interactive=False)
                frame = gr.JSON(label="frame")
                message = gr.Markdown()

        def run(name, clip, transcript):
            try:
                out = pool.parse(name, audio=clip, transcript=transcript or "")
            except Exception as err:  # noqa: BLE001 - shown to the user, never a traceback
                return "", [], {}, _error_box(err)
            note = f"model output was **{out['status']}**" + ("" if out["status"] == "clean" else f": `{out['raw']}`")
            return out["intent"], out["entities"], out["frame"], note

        go_btn.click(run, [ckpt, audio, text], [intent, entities, frame, message], api_name="parse")


def compare_tab(pool: ModelPool, checkpoints: list[str], runs: list[str]):
    import gradio as gr

    choices = checkpoints + [r for r in runs if r not in checkpoints]
    with gr.Tab("Compare checkpoints"):
        gr.Markdown("The same clip (or transcript) through two checkpoints, and their dev score curves when they are "
                    "run folders.")
        with gr.Row():
            left = gr.Dropdown(choices, value=choices[0], label="checkpoint A", allow_custom_value=True)
            right = gr.Dropdown(choices, value=choices[-1], label="checkpoint B", allow_custom_value=True)
        audio = gr.Audio(sources=["microphone", "upload"], type="numpy", label="speech")
        text = gr.Textbox(label="or a transcript")
        go_btn = gr.Button("Compare", variant="primary")
        with gr.Row():
            out_a = gr.JSON(label="A")
            out_b = gr.JSON(label="B")
        message = gr.Markdown()
        plot = gr.Plot(label="score curves")

        def run(a, b, clip, transcript):
            outs, notes = [], []
            for name in (a, b):
                try:
                    outs.append(pool.parse(run_model_path(name), audio=clip, transcript=transcript or ""))
                except Exception as err:  # noqa: BLE001
                    outs.append({})
                    notes.append(f"{name}: {err}")
            with_curves = [n for n in (a, b) if (Path(n) / "curves.csv").is_file()]
            fig = curves_figure(with_curves) if with_curves else None
            return outs[0], outs[1], "\n\n".join(f"**Could not do that:** {n}" for n in notes), fig

        go_btn.click(run, [left, right, audio, text], [out_a, out_b, message, plot], api_name="compare")


def plan_tab(results: str):
    import gradio as gr

    with gr.Tab("Plan data collection"):
        source = "your results table " + results if results else "the paper's measured curves (Choi et al.)"
        gr.Markdown(f"How much paired speech to collect for a target SLU-F1, from {source}.")
        with gr.Row():
            with gr.Column():
                language = gr.Textbox(value="en", label="language (or curve group)")
                target = gr.Number(value=0.75, label="target SLU-F1 (or share of the full-data score)")
                share = gr.Checkbox(value=False, label="target is a share of the full-data score")
                risk = gr.Slider(0.01, 0.49, value=0.1, step=0.01, label="accepted risk of missing the target")
                seconds = gr.Number(value=3.0, label="average utterance length (s)")
                cost = gr.Number(value=0, label="cost per hour of annotated speech (0 = not given)")
                go_btn = gr.Button("Recommend", variant="primary")
            with gr.Column():
                table = gr.Dataframe(label="per scheme", interactive=False)
                message = gr.Markdown()
        plot = gr.Plot(label="curves")

        def run(lang, tgt, shr, rsk, sec, cst):
            try:
                rec, fig = plan_target(results, lang.strip(), float(tgt), bool(shr), float(rsk), float(sec or 0),
                                       float(cst or 0))
            except Exception as err:  # noqa: BLE001
                return [], _error_box(err), None
            rows = [[a["curve"], a["status"], a["expected"]["amount"], a["safe"]["amount"], a["expected"]["unit"],
                     a["expected"]["hours"], round(a["p_reach_corpus"], 3)] for a in rec["answers"]]
            summary = (f"**{rec['status']}**: scheme **{rec['best_scheme'] or '-'}**, expected "
                       f"{rec['best_expected']['amount']} / safe {rec['best_safe']['amount']} "
                       f"{rec['best_expected']['unit']}. " + " ".join(rec["notes"]))
            return rows, summary, fig

        go_btn.click(run, [language, target, share, risk, seconds, cost], [table, message, plot], api_name="plan")


def build_demo(cfg: AppConfig):
    import gradio as gr

    pool = ModelPool(num_beams=cfg.num_beams)
    checkpoints = cfg.checkpoint_list()
    runs = [str(p) for p in find_runs(cfg.runs_dir)]
    with gr.Blocks(title="LALM-SLU", analytics_enabled=False) as demo:
        gr.Markdown("# LALM-SLU\nSpoken language understanding with a large audio language model: intent and slots "
                    "straight from speech.")
        if DEMO in checkpoints:
            gr.Markdown("**Demo model:** `demo` is an untrained tiny twin of Qwen2-Audio (0.5M parameters, random "
                        "weights). It shows every step of the app working offline, but its answers are noise. Start "
                        "the app with `--checkpoints RUN/model` or `--checkpoints Qwen/Qwen2-Audio-7B-Instruct` "
                        "for real answers.")
        parse_tab(pool, checkpoints)
        compare_tab(pool, checkpoints, runs)
        plan_tab(cfg.results)
    return demo


def main(cfg: AppConfig) -> None:
    demo = build_demo(cfg)
    demo.launch(server_name=cfg.host, server_port=cfg.port, share=False)


if __name__ == "__main__":
    from transformers import HfArgumentParser

    try:
        (config,) = HfArgumentParser(AppConfig).parse_args_into_dataclasses()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    main(config)
