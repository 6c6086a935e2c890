"""A Table-2-style report from per-seed results rows (Choi et al., 2025, Table 2).

    python -m evaluation.report RESULTS [--format markdown|csv] [--split test] [--metrics intent_accuracy,entity_f1,slu_f1]

Rows are speech level × scheme: the oracle first, then 0 % text-only, then for each speech level direct mixing and
curriculum. Columns are corpus × metric. Each cell is the mean ± 95 % t-interval half-width over seeds
(evaluation/stats.py); † marks a scheme whose interval lies above, and does not overlap, every other scheme's at the
same speech level. ``markdown`` prints the table; ``csv`` prints it tidy, one line per cell, with the columns of the
paper's reference CSV plus ``n_seeds`` and ``dagger``. Only monolingual rows (recipe ``mono``) are reported.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from data.textio import atomic_write_text
from evaluation.results import METRIC_COLUMNS, ResultsError, merge_duplicates, read_results
from data.cli import run_cli
from evaluation.stats import MeanCI, dagger, mean_ci

FORMATS = ("markdown", "csv")
DEFAULT_METRICS = ("intent_accuracy", "entity_f1", "slu_f1")
METRIC_LABELS = {
    "intent_accuracy": "Intent Acc.",
    "scenario_accuracy": "Scenario Acc.",
    "action_accuracy": "Action Acc.",
    "entity_f1": "Entity F1",
    "word_f1": "Word F1",
    "char_f1": "Char F1",
    "slu_f1": "SLU-F1",
    "slu_precision": "SLU-P",
    "slu_recall": "SLU-R",
}
SCHEME_ORDER = ("oracle", "text", "direct", "curriculum")
SCHEME_LABELS = {"oracle": "Oracle", "text": "Text", "direct": "Direct", "curriculum": "Curr."}
CORPUS_ORDER = ("slurp", "italic", "speech_massive", "speech-massive", "massive")
CORPUS_LABELS = {
    "slurp": "SLURP",
    "italic": "ITALIC",
    "speech_massive": "Speech-MASSIVE",
    "speech-massive": "Speech-MASSIVE",
    "massive": "MASSIVE",
}
MULTILINGUAL = {"speech_massive", "speech-massive", "massive", "synth", "manifest"}
ORACLE = "oracle"


@dataclass
class ReportConfig:
    results: str = field(
        default="", metadata={"help": "results CSV (evaluation/results.py schema)", "positional": True}
    )
    format: str = field(default="markdown", metadata={"help": "markdown table or tidy csv", "choices": FORMATS})
    split: str = field(default="", metadata={"help": "split to report; default: test if present, else the only one"})
    metrics: str = field(default=",".join(DEFAULT_METRICS), metadata={"help": "comma-separated metric columns"})
    out: str = field(default="", metadata={"help": "also write the report to this file (atomically)"})

    def __post_init__(self) -> None:
        if not self.results:
            raise ResultsError("RESULTS is required: the path of a results CSV")
        if self.format not in FORMATS:
            raise ResultsError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        unknown = [m for m in self.metric_list() if m not in METRIC_COLUMNS]
        if unknown:
            raise ResultsError(f"--metrics: unknown {unknown}; choose from {', '.join(METRIC_COLUMNS)}")

    def metric_list(self) -> list[str]:
        return [m.strip() for m in self.metrics.split(",") if m.strip()]


@dataclass(frozen=True)
class Cell:
    value: MeanCI
    dagger: bool = False


RowKey = tuple[float | None, str]  # (speech percent, None for the oracle row; scheme)
ColKey = tuple[str, str]  # (corpus, language)


@dataclass
class ReportTable:
    columns: list[ColKey]
    metrics: list[str]
    rows: list[RowKey]
    cells: dict[tuple[RowKey, ColKey, str], Cell]
    notes: list[str] = field(default_factory=list)  # what was merged on the way (duplicate rows)


def _corpus_rank(corpus: str) -> tuple[int, str]:
    return (CORPUS_ORDER.index(corpus), "") if corpus in CORPUS_ORDER else (len(CORPUS_ORDER), corpus)


def _row_rank(key: RowKey) -> tuple:
    level, scheme = key
    scheme_rank = SCHEME_ORDER.index(scheme) if scheme in SCHEME_ORDER else len(SCHEME_ORDER)
    return (level is not None, level or 0.0, scheme_rank, scheme)


def choose_split(rows: Sequence[Mapping[str, Any]], split: str = "") -> str:
    splits = sorted({r["split"] for r in rows})
    if split:
        if split not in splits:
            raise ResultsError(f"no rows for split {split!r}; the results have {splits}")
        return split
    if "test" in splits or len(splits) == 1:
        return "test" if "test" in splits else splits[0]
    raise ResultsError(f"the results mix splits {splits}; choose one with --split")


def build_table(
    rows: Iterable[Mapping[str, Any]], metrics: Sequence[str] = DEFAULT_METRICS, split: str = ""
) -> ReportTable:
    """Group per-seed rows into cells and mark †s (a pure function over normalised results rows)."""
    rows, notes = merge_duplicates(rows)
    rows = [r for r in rows if (r.get("recipe") or "mono") == "mono"]
    if not rows:
        raise ResultsError("no monolingual (recipe 'mono') rows to report")
    split = choose_split(rows, split)
    values: dict[tuple[RowKey, ColKey, str], list[float]] = defaultdict(list)
    for r in rows:
        if r["split"] != split:
            continue
        scheme = r["scheme"]
        level = None if scheme == ORACLE else float(r["speech_percent"] or 0.0)
        for m in metrics:
            if r.get(m) is not None:
                values[((level, scheme), (r["corpus"], r["language"]), m)].append(r[m])
    summary = {key: mean_ci(v) for key, v in values.items()}

    cells: dict[tuple[RowKey, ColKey, str], Cell] = {}
    for (row_key, col, m), ci in summary.items():
        level, scheme = row_key
        rivals = [
            other
            for (other_row, other_col, other_m), other in summary.items()
            if other_col == col and other_m == m and other_row[0] == level and other_row[1] != scheme
        ]
        # The paper compares the two training schemes at one speech level; the oracle row has no rival.
        marked = level is not None and bool(rivals) and all(dagger(ci, other) for other in rivals)
        cells[(row_key, col, m)] = Cell(ci, marked)

    columns = sorted({c for _, c, _ in cells}, key=lambda c: (_corpus_rank(c[0]), c[1]))
    table_rows = sorted({r for r, _, _ in cells}, key=_row_rank)
    return ReportTable(columns, list(metrics), table_rows, cells, notes)


def _corpus_label(col: ColKey) -> str:
    corpus, language = col
    label = CORPUS_LABELS.get(corpus, corpus)
    if corpus in MULTILINGUAL and language:
        label += " " + language.split("-")[0].upper()
    return label


def _row_labels(table: ReportTable) -> list[tuple[str, str]]:
    labels, previous_level = [], object()
    for level, scheme in table.rows:
        if level is None:
            labels.append((SCHEME_LABELS.get(scheme, scheme), ""))
            continue
        level_label = f"{level:g}%" if level != previous_level else ""
        labels.append((level_label, SCHEME_LABELS.get(scheme, scheme)))
        previous_level = level
    return labels


def to_markdown(table: ReportTable, digits: int = 4) -> str:
    header = ["Speech", "Scheme"] + [
        f"{_corpus_label(c)} {METRIC_LABELS.get(m, m)}" for c in table.columns for m in table.metrics
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    n_seeds = set()
    for row_key, (level_label, scheme_label) in zip(table.rows, _row_labels(table)):
        out = [level_label, scheme_label]
        for c in table.columns:
            for m in table.metrics:
                cell = table.cells.get((row_key, c, m))
                if cell is None:
                    out.append("–")
                    continue
                n_seeds.add(cell.value.n)
                out.append(cell.value.format(digits) + (" †" if cell.dagger else ""))
        lines.append("| " + " | ".join(out) + " |")
    seeds = ", ".join(str(n) for n in sorted(n_seeds))
    lines += [
        "",
        f"Mean ± 95% CI half-width (t-distribution) over seeds (n = {seeds}). † higher than the other scheme at the "
        "same speech level with non-overlapping 95% CIs.",
    ]
    lines += [f"Note: {note}." for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: ReportTable, digits: int = 4) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["corpus", "language", "speech_percent", "scheme", "metric", "mean", "ci95_halfwidth", "n_seeds", "dagger"]
    )
    for row_key in table.rows:
        level, scheme = row_key
        for c in table.columns:
            for m in table.metrics:
                cell = table.cells.get((row_key, c, m))
                if cell is None:
                    continue
                h = cell.value.half_width
                writer.writerow([
                    c[0], c[1], "" if level is None else f"{level:g}", scheme, m,
                    f"{cell.value.mean:.{digits}f}", "" if h is None else f"{h:.{digits}f}",
                    cell.value.n, int(cell.dagger),
                ])  # fmt: skip
    return buf.getvalue()


RENDERERS = {"markdown": to_markdown, "csv": to_csv}


def main(cfg: ReportConfig) -> str:
    table = build_table(read_results(cfg.results), cfg.metric_list(), cfg.split)
    text = RENDERERS[cfg.format](table)
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    if cfg.out:
        atomic_write_text(cfg.out, text)
    sys.stdout.write(text)
    return text


def run(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        main,
        ReportConfig,
        ResultsError,
        argv=argv,
        prog="python -m evaluation.report",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(run())
