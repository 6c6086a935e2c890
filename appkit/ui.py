"""The page: four tabs (Live, Compare, Planner, Results), one thin handler per named endpoint, and the launch settings.

Every handler raises ``gr.Error`` for anything the user can fix (the page shows it in a red box; a ``gradio_client``
script gets an exception), with the message HTML-escaped so that nothing in it is taken for markup.
"""

from __future__ import annotations

import functools
import hashlib
import html
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from appkit import planning, reporting
from appkit.catalog import AppError, Catalog
from appkit.catalog import DEMO_RUNS_DIR
from appkit.examples import Example, example_clips
from appkit.models import ModelPool, highlight, parse
from appkit.runs import config_summary, curves_figure, test_metrics

log = logging.getLogger("lalm_slu.app")

SYSTEM_FONTS = [
    "ui-sans-serif",
    "system-ui",
    "-apple-system",
    "Segoe UI",
    "Roboto",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
MAX_UPLOAD = "30mb"  # a 30 s clip is at most ~11 MB even as stereo float32 at 48 kHz
CSS = """
.card {border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 12px 16px;}
.intent {font-size: 1.6em; font-weight: 700; letter-spacing: 0.01em;}
.muted {color: var(--body-text-color-subdued); font-size: 0.92em;}
.pill {display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 0.85em; margin-right: 6px;}
.pill.clean {background: #dcfce7; color: #166534;} .pill.repaired {background: #fef9c3; color: #854d0e;}
.pill.unusable {background: #fee2e2; color: #991b1b;}
.banner {background: #fff7ed; border: 1px solid #fdba74; border-radius: 8px; padding: 8px 14px; color: #7c2d12;}
footer {visibility: visible;}
"""


FAILED = "<div class='card muted'><b>Not parsed.</b> The red message says why and what to do.</div>"


def theme():
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def esc(text: Any) -> str:
    return html.escape(str(text), quote=False)


def user_errors(fn):
    """AppError (and any unexpected error) becomes gr.Error with an escaped message; nothing leaks a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except AppError as err:
            raise gr.Error(esc(err), duration=None, print_exception=False) from None
        except Exception as err:  # noqa: BLE001 - the page gets one line; the log keeps the traceback
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(
                esc(f"unexpected error ({type(err).__name__}: {err}); the server log has the details"),
                duration=None,
                print_exception=False,
            ) from None

    return wrapper


def _progress(progress):
    return lambda fraction, desc: progress(fraction, desc=desc) if progress is not None else None


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _entities_text(entities) -> str:
    return "; ".join(f"{t}={f}" for t, f in entities) or "(none)"


@dataclass
class AppState:
    """What the handlers share: the served checkpoints, the loaded models, the example clips and the settings."""

    catalog: Catalog
    pool: ModelPool
    results: Path | None = None
    num_beams: int = 3
    examples: list[Example] = field(default_factory=list)

    def __post_init__(self):
        self._gold = {}
        for ex in self.examples:
            try:
                self._gold[_digest(ex.path)] = ex
            except OSError:
                continue

    def example_for(self, path: str | None) -> Example | None:
        if not path:
            return None
        try:
            return self._gold.get(_digest(path))
        except OSError:
            return None

    # ---------------------------------------------------------------------------------------------------- Live
    @user_errors
    def parse(self, checkpoint: str, audio: str | None, transcript: str, progress=gr.Progress()):
        ckpt = self.catalog.resolve(checkpoint)
        out = parse(
            self.pool,
            ckpt,
            audio_path=audio or None,
            transcript=transcript or "",
            num_beams=self.num_beams,
            progress=_progress(progress),
        )
        gold = self.example_for(audio)
        shown = out.frame
        text = transcript if out.input == "transcript" else (out.heard or (gold.transcript if gold else ""))
        if text:
            marked = highlight(text, out.entities)
        else:
            marked = [(f, t) for t, f in out.entities] or [("(no entities)", None)]
        result = out.to_dict()
        if gold is not None:
            result["gold"] = {"intent": gold.frame.intent, "frame": gold.frame.to_dict(), "transcript": gold.transcript}
        timing = f"{out.latency_s:.2f} s decoding" + (
            f" + {out.load_s:.1f} s loading (first use)" if out.load_s > 0.5 else ""
        )
        source = f"speech, {out.duration_s:.1f} s clip" if out.input == "speech" else "typed transcript (text path)"
        card = (
            f"<div class='card'><div class='muted'>intent</div><div class='intent'>{esc(shown.intent)}</div>"
            f"<div>scenario <b>{esc(shown.scenario)}</b> · action <b>{esc(shown.action)}</b></div>"
            f"<div style='margin-top:6px'><span class='pill {esc(out.status)}'>output {esc(out.status)}</span>"
            f"<span class='muted'>{esc(source)} · {esc(timing)} · {esc(ckpt.label)}</span></div>"
        )
        if out.heard and out.input == "speech":
            card += f"<div style='margin-top:6px'>heard: “{esc(out.heard)}”</div>"
        if gold is not None:
            verdict = "matches" if gold.frame.intent == shown.intent else "differs from"
            card += (
                f"<div class='muted' style='margin-top:6px'>example clip: gold intent "
                f"<b>{esc(gold.frame.intent)}</b> ({verdict} the answer); said: “{esc(gold.transcript)}”</div>"
            )
        card += "</div>"
        entities = [[t, f] for t, f in out.entities]
        return result, card, entities, marked, out.raw

    # ------------------------------------------------------------------------------------------------- Compare
    @user_errors
    def compare(self, checkpoints: list[str] | str, audio: str | None, transcript: str, progress=gr.Progress()):
        import pandas as pd

        names = [checkpoints] if isinstance(checkpoints, str) else list(checkpoints or [])
        names = list(dict.fromkeys(n for n in names if n))
        if not 2 <= len(names) <= 4:
            raise AppError(f"choose two to four checkpoints to compare (got {len(names)})")
        ckpts = [self.catalog.resolve(n) for n in names]
        wave = None
        if audio:
            from appkit.models import read_clip

            wave = read_clip(audio)
        elif not (transcript or "").strip():
            raise AppError("nothing to compare on: record or upload a clip, pick an example, or type a transcript")
        step = _progress(progress)
        answers = []
        for i, ckpt in enumerate(ckpts):
            step(i / len(ckpts), f"{ckpt.label} ({i + 1} of {len(ckpts)})")
            answers.append(parse(self.pool, ckpt, wave=wave, transcript=transcript or "", num_beams=self.num_beams))
        gold = self.example_for(audio)
        rows = []
        if gold is not None:
            rows.append(
                {
                    "checkpoint": "gold (example clip)",
                    "intent": gold.frame.intent,
                    "entities": _entities_text([[e.type, e.filler] for e in gold.frame.entities]),
                    "output": "-",
                    "latency (s)": None,
                }
            )
        for ckpt, a in zip(ckpts, answers):
            rows.append(
                {
                    "checkpoint": ckpt.label,
                    "intent": a.intent,
                    "entities": _entities_text(a.entities),
                    "output": a.status,
                    "latency (s)": round(a.latency_s, 2),
                }
            )
        table = pd.DataFrame(rows)
        ref = 0  # the gold row, or the first checkpoint

        def colour(df):
            styles = pd.DataFrame("", index=df.index, columns=df.columns)
            for col in ("intent", "entities"):
                for i in df.index:
                    if i != ref:
                        same = df.at[i, col] == df.at[ref, col]
                        styles.at[i, col] = (
                            "background-color: #dcfce7" if same else "background-color: #fee2e2; font-weight: 600"
                        )
            return styles

        styled = table.style.apply(colour, axis=None)
        against = (
            "the gold frame of the example clip" if gold is not None else f"the first checkpoint ({ckpts[0].label})"
        )
        note = (
            f"Differences from {esc(against)} are red, agreements green. Input: "
            + (f"a {answers[0].duration_s:.1f} s clip" if wave is not None else "the typed transcript (text path)")
            + "."
        )
        metrics = pd.DataFrame([test_metrics(c) for c in ckpts])
        configs = pd.DataFrame([config_summary(c) for c in ckpts])
        return styled, note, curves_figure(ckpts), metrics, configs

    # ------------------------------------------------------------------------------------------------- Planner
    @user_errors
    def plan(
        self,
        source: str,
        language: str,
        target: float,
        share: bool,
        risk: float,
        avg_seconds: float,
        cost_per_hour: float,
    ):
        return planning.plan_target(
            source, self._results(), (language or "").strip(), target, bool(share), risk, avg_seconds, cost_per_hour
        )

    @user_errors
    def allocate(
        self,
        source: str,
        languages: list[str] | str,
        budget: float,
        unit: str,
        avg_seconds: float,
        cost_per_hour: float,
        objective: str,
    ):
        return planning.plan_budget(
            source, self._results(), languages, budget, unit, avg_seconds, cost_per_hour, objective
        )

    def _results(self) -> str | None:
        return str(self.results) if self.results else None

    def planner_languages(self, source: str, budget: bool = False) -> list[str]:
        try:
            return planning.languages(planning.load_curves(source, self._results()), allocatable_only=budget)
        except AppError:
            return []

    # ------------------------------------------------------------------------------------------------- Results
    @user_errors
    def report(self, split: str = ""):
        return reporting.report(self.results, split or "")


# ---------------------------------------------------------------------------------------------------------- layout


def _live_tab(state: AppState, choices):
    with gr.Tab("Live", id="live"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                ckpt = gr.Dropdown(
                    choices, value=choices[0][1], label="checkpoint", elem_id="live-checkpoint", allow_custom_value=True
                )  # the catalog, not the widget, decides what is served
                audio = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="speech (up to 30 s)",
                    buttons=["download"],
                    elem_id="live-audio",
                )
                if state.examples:
                    gr.Examples(
                        [[e.path] for e in state.examples],
                        inputs=[audio],
                        label="example clips",
                        example_labels=[f"{e.language}: {e.transcript}" for e in state.examples],
                    )
                text = gr.Textbox(
                    label="or type a transcript (the text path; used when there is no clip)",
                    placeholder="wake me up at seven am",
                    elem_id="live-text",
                )
                with gr.Row():
                    clear = gr.Button("Clear", variant="secondary")
                    go = gr.Button("Parse", variant="primary", elem_id="live-parse")
            with gr.Column(scale=6):
                card = gr.HTML(
                    "<div class='card muted'>The answer appears here: scenario, action, entities.</div>",
                    elem_id="live-result",
                )
                marked = gr.HighlightedText(
                    label="entities in the transcript",
                    combine_adjacent=False,
                    show_legend=True,
                    elem_id="live-highlight",
                )
                entities = gr.Dataframe(
                    headers=["type", "filler"],
                    datatype=["str", "str"],
                    label="entities",
                    interactive=False,
                    elem_id="live-entities",
                )
                with gr.Accordion("raw model output and full result", open=False):
                    raw = gr.Textbox(label="raw model output", lines=2, elem_id="live-raw")
                    result = gr.JSON(label="result (what the API returns)")
        outputs = [result, card, entities, marked, raw]
        go.click(state.parse, [ckpt, audio, text], outputs, api_name="parse", show_progress="full").failure(
            lambda: (None, FAILED, None, None, ""), None, outputs, api_visibility="private", queue=False
        )
        return ckpt
        clear.click(
            lambda: (None, "", None, "<div class='card muted'>Cleared.</div>", None, None, ""),
            None,
            [audio, text, result, card, entities, marked, raw],
            api_visibility="private",
            queue=False,
        )


def _compare_tab(state: AppState, choices):
    with gr.Tab("Compare", id="compare"):
        gr.Markdown(
            "One clip through two to four checkpoints or run folders, side by side; beside them each run's "
            "dev score curves, test metrics and settings."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                pick = gr.Dropdown(
                    choices,
                    value=[c[1] for c in choices[:2]],
                    multiselect=True,
                    max_choices=4,
                    label="checkpoints (2 to 4)",
                    elem_id="compare-checkpoints",
                    allow_custom_value=True,
                )
                audio = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="speech (up to 30 s)",
                    buttons=["download"],
                    elem_id="compare-audio",
                )
                if state.examples:
                    gr.Examples(
                        [[e.path] for e in state.examples],
                        inputs=[audio],
                        label="example clips",
                        example_labels=[f"{e.language}: {e.transcript}" for e in state.examples],
                    )
                text = gr.Textbox(label="or type a transcript (text path)", elem_id="compare-text")
                go = gr.Button("Compare", variant="primary", elem_id="compare-run")
            with gr.Column(scale=7):
                note = gr.Markdown(elem_id="compare-note")
                table = gr.Dataframe(
                    headers=["checkpoint", "intent", "entities", "output", "latency (s)"],
                    label="answers",
                    interactive=False,
                    wrap=True,
                    elem_id="compare-table",
                )
                metrics = gr.Dataframe(
                    headers=["checkpoint", "split", "intent acc.", "entity F1", "SLU-F1", "items"],
                    label="test metrics (points)",
                    interactive=False,
                )
                configs = gr.Dataframe(
                    headers=["checkpoint", "scheme", "speech %", "seed", "corpus", "language"],
                    label="run settings",
                    interactive=False,
                    wrap=True,
                )
        plot = gr.Plot(label="dev score curves", elem_id="compare-plot")
        outputs = [table, note, plot, metrics, configs]
        go.click(state.compare, [pick, audio, text], outputs, api_name="compare").failure(
            lambda: (None, "**Not compared**: the red message says why.", None, None, None),
            None,
            outputs,
            api_visibility="private",
            queue=False,
        )
        return pick


def _planner_tab(state: AppState):
    sources = [("the paper's curves (Choi et al., Tables 2-3)", planning.PAPER)]
    if state.results is not None:
        sources.append((f"the runs folder's results ({state.results})", planning.RUNS))
    langs = state.planner_languages(planning.PAPER)
    budget_langs = state.planner_languages(planning.PAPER, budget=True)
    with gr.Tab("Planner", id="planner"):
        gr.Markdown(
            "How much paired speech to collect for a target score (target mode), or how to split a speech "
            "budget over languages (budget mode). Scores are SLU-F1 in points (0-100)."
        )
        source = gr.Radio(sources, value=planning.PAPER, label="curves to plan on", elem_id="planner-source")
        with gr.Tabs():
            with gr.Tab("Target mode", id="target"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4):
                        language = gr.Dropdown(
                            langs,
                            value="en" if "en" in langs else (langs or [None])[0],
                            label="language",
                            allow_custom_value=False,
                        )
                        target = gr.Number(
                            value=75, label="target SLU-F1 (points) or share of the best (%)", minimum=0, maximum=100
                        )
                        share = gr.Checkbox(value=False, label="target is a share (%) of the best full-corpus score")
                        risk = gr.Slider(0.01, 0.49, value=0.1, step=0.01, label="accepted risk of missing the target")
                        seconds = gr.Number(value=3.0, label="average utterance length (s)", minimum=0)
                        cost = gr.Number(value=60, label="cost per hour of recorded, annotated speech", minimum=0)
                        go = gr.Button("Recommend", variant="primary", elem_id="planner-recommend")
                    with gr.Column(scale=8):
                        first = _first(state.plan, planning.PAPER, "en", 75, False, 0.1, 3.0, 60)
                        summary = gr.Markdown(first[0], elem_id="planner-summary")
                        table = gr.Dataframe(
                            first[1], label="per scheme", interactive=False, wrap=True, elem_id="planner-table"
                        )
                        download = gr.File(first[3], label="table as CSV", height=70)
                plot = gr.Plot(first[2], label="curves, 80% bands and the recommendation")
                go.click(
                    state.plan,
                    [source, language, target, share, risk, seconds, cost],
                    [summary, table, plot, download],
                    api_name="plan",
                )
            with gr.Tab("Budget mode", id="budget"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4):
                        blangs = gr.Dropdown(budget_langs, value=budget_langs[:3], multiselect=True, label="languages")
                        budget = gr.Number(value=10, label="budget", minimum=0)
                        unit = gr.Radio(list(planning.UNITS), value="hours", label="budget unit")
                        bseconds = gr.Number(value=3.0, label="average utterance length (s)", minimum=0)
                        bcost = gr.Number(value=60, label="cost per hour of recorded, annotated speech", minimum=0)
                        objective = gr.Radio(
                            [("mean score", "mean"), ("worst language", "worst")], value="mean", label="maximise"
                        )
                        bgo = gr.Button("Split the budget", variant="primary", elem_id="planner-allocate")
                    with gr.Column(scale=8):
                        first = _first(state.allocate, planning.PAPER, budget_langs[:3], 10, "hours", 3.0, 60, "mean")
                        bsummary = gr.Markdown(first[0], elem_id="budget-summary")
                        btable = gr.Dataframe(
                            first[1], label="per language", interactive=False, wrap=True, elem_id="budget-table"
                        )
                        bdownload = gr.File(first[3], label="table as CSV", height=70)
                bplot = gr.Plot(first[2], label="the split")
                bgo.click(
                    state.allocate,
                    [source, blangs, budget, unit, bseconds, bcost, objective],
                    [bsummary, btable, bplot, bdownload],
                    api_name="allocate",
                )

        def on_source(src):
            a, b = state.planner_languages(src), state.planner_languages(src, budget=True)
            return gr.update(choices=a, value=a[0] if a else None), gr.update(choices=b, value=b[:3])

        source.change(on_source, source, [language, blangs], api_visibility="private", queue=False)


def _first(handler, *args):
    """The page opens with the default inputs already answered; an empty answer if they cannot be."""
    try:
        return handler(*args)
    except gr.Error:
        return "", None, None, None


def _results_tab(state: AppState):
    with gr.Tab("Results", id="results"):
        where = esc(state.results) if state.results else "(no runs folder)"
        gr.Markdown(
            f"The Table-2-style report of `{where}`: mean ± 95% CI over seeds; † marks a scheme whose "
            "interval lies above the other scheme's at the same speech level."
        )
        with gr.Row():
            split = gr.Dropdown(
                [("test (or the only split)", ""), ("test", "test"), ("dev", "dev")], value="", label="split", scale=3
            )
            refresh = gr.Button("Refresh", variant="primary", scale=1, elem_id="results-refresh")
        try:
            md, fig = reporting.report(state.results)
        except AppError as err:
            md, fig = f"_{esc(err)}_", None
        table = gr.Markdown(md, elem_id="results-table")
        plot = gr.Plot(fig, label="SLU-F1 vs speech level")
        refresh.click(state.report, [split], [table, plot], api_name="report")


def build_demo(state: AppState):
    choices = state.catalog.choices()
    with gr.Blocks(title="LALM-SLU", analytics_enabled=False) as demo:
        gr.Markdown(
            "# LALM-SLU\nSpoken language understanding with a large audio language model: scenario, action "
            "and entities straight from speech. Compare checkpoints, plan how much speech to collect, read "
            "the results."
        )
        if any(c.is_demo for c in state.catalog.all()):
            gr.HTML(
                "<div class='banner'><b>demo</b> is the untrained tiny twin of Qwen2-Audio (0.5M parameters, "
                "random weights): every step runs offline, but its answers are noise. Start the app with "
                "<code>--checkpoints RUN</code> or <code>--runs-dir RUNS</code> for trained models.</div>"
            )
        if any(c.run_dir is not None and DEMO_RUNS_DIR in c.run_dir.parents for c in state.catalog.all()):
            gr.HTML(
                "<div class='banner'>The <b>demo/</b> checkpoints are the Mini-LALM (4M parameters) trained on "
                "this project's synthetic voices; on voices it never heard it gets about one intent in three "
                "right (demo/SCORES.md), and a real microphone will do worse. Serve your own runs with "
                "<code>--checkpoints</code> or <code>--runs-dir</code>.</div>"
            )
        with gr.Tabs():
            live = _live_tab(state, choices)
            pick = _compare_tab(state, choices)
            _planner_tab(state)
            _results_tab(state)

        def fresh_choices():  # run folders that appeared since start-up are offered on the next page load
            now = state.catalog.choices()
            return gr.update(choices=now), gr.update(choices=now)

        demo.load(fresh_choices, None, [live, pick], api_visibility="private", queue=False)
    return demo


def make_state(
    checkpoints: list[str],
    runs_dir: str | None,
    results: str | None,
    num_beams: int = 3,
    max_models: int = 3,
    examples: list[Example] | None = None,
) -> AppState:
    catalog = Catalog(checkpoints, runs_dir)
    return AppState(
        catalog,
        ModelPool(max_models),
        reporting.results_path(results, runs_dir),
        num_beams,
        example_clips() if examples is None else examples,
    )


def launch(
    demo, *, host: str = "127.0.0.1", port: int = 7860, concurrency: int = 2, block: bool = True, quiet: bool = False
):
    """Serve on ``host`` only: queue with a concurrency limit, no share link, no analytics, system fonts, and no
    files served beyond the app's own uploads and outputs (allowed_paths stays empty)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        allowed_paths=[],
        max_file_size=MAX_UPLOAD,
        ssr_mode=False,
        theme=theme(),
        css=CSS,
        footer_links=["api", "settings"],
        quiet=quiet,
        prevent_thread_lock=not block,
        show_error=False,
        pwa=False,
        mcp_server=False,
    )
