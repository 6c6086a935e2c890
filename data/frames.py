"""SLU frames, the one-line JSON training target, and a parser from model text back to a frame.

A frame is what an utterance means: a scenario, an action (together the intent ``scenario_action``) and an ordered
list of (type, filler) entities. The model is trained to emit the frame as a single-line JSON object::

    {"scenario": "calendar", "action": "set", "entities": [{"type": "date", "filler": "tomorrow"}]}

``parse_output`` turns whatever a model produced into a frame and never raises. It reports whether the text was
clean JSON, needed repair, or was unusable, so runs can count invalid outputs (NeMo and SpeechBrain fall back to
``none``/``none`` the same way). Nothing here imports torch.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable

NONE_LABEL = "none"
# Bound the work on pathological model outputs: a generation is at most a few hundred tokens.
MAX_PARSE_CHARS = 20_000


def normalize_text(value: str) -> str:
    """Lowercase and collapse runs of whitespace: the normalisation of entity fillers and of labels read from a model."""
    return " ".join(value.lower().split())


@dataclass(frozen=True)
class Entity:
    type: str
    filler: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "filler": self.filler}


@dataclass(frozen=True)
class SLUFrame:
    """Scenario, action and entities in textual order (duplicates kept)."""

    scenario: str
    action: str
    entities: tuple[Entity, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # Accept any iterable of Entity or (type, filler) pairs; store an immutable tuple.
        ents = tuple(e if isinstance(e, Entity) else Entity(*e) for e in self.entities)
        object.__setattr__(self, "entities", ents)

    @property
    def intent(self) -> str:
        return f"{self.scenario}_{self.action}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "action": self.action,
            "entities": [e.to_dict() for e in self.entities],
        }

    def to_target(self) -> str:
        """The training target: one line of JSON, keys in a fixed order, non-ASCII kept readable."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "SLUFrame":
        """Build a frame from a trusted dict with ``scenario``, ``action``, ``entities`` (no normalisation)."""
        return cls(
            scenario=obj["scenario"],
            action=obj["action"],
            entities=tuple(Entity(e["type"], e["filler"]) for e in obj.get("entities", [])),
        )

    @classmethod
    def from_intent(cls, intent: str, entities: Iterable[Entity | tuple[str, str]] = ()) -> "SLUFrame":
        scenario, action = split_intent(intent)
        return cls(scenario, action, tuple(entities))


NONE_FRAME = SLUFrame(NONE_LABEL, NONE_LABEL, ())


def split_intent(intent: str) -> tuple[str, str]:
    """Split ``scenario_action`` at the first underscore (no SLURP or MASSIVE scenario contains one)."""
    scenario, sep, action = intent.partition("_")
    if not sep or not scenario or not action:
        return (scenario or NONE_LABEL, action or NONE_LABEL)
    return scenario, action


# --------------------------------------------------------------------------------------------------------------
# MASSIVE-style bracket annotations: "wake me up at [time : five am] [date : this week]"

# Linear time on any input: no two neighbouring quantifiers can match the same characters (the filler is everything
# up to the closing bracket and is stripped in Python), and a filler stops at the next "[", so an unclosed "[x :"
# followed by 100,000 spaces, or thousands of unclosed openings, costs one pass, not a cubic backtrack.
_ANNOT_RE = re.compile(r"\[\s*([A-Za-z_][A-Za-z0-9_]*)\s*:([^\[\]]*)\]")


def parse_annotation(annot_utt: str) -> tuple[Entity, ...]:
    """Entities of a MASSIVE ``annot_utt`` string, fillers normalised, order kept.

    ``annot_utt`` marks each entity inline as ``[type : filler]``, e.g. ``wake me up at [time : five am]``.
    """
    out = []
    for match in _ANNOT_RE.finditer(annot_utt):
        filler = normalize_text(match.group(2))
        if filler:
            out.append(Entity(match.group(1), filler))
    return tuple(out)


def strip_annotation(annot_utt: str) -> str:
    """The plain utterance behind a bracket annotation (for the sanity check against ``utt``)."""
    return " ".join(_ANNOT_RE.sub(lambda m: m.group(2), annot_utt).split())


# --------------------------------------------------------------------------------------------------------------
# Parsing model output


class ParseStatus(str, Enum):
    CLEAN = "clean"  # the text (after stripping fences/special tokens) was exactly one well-formed frame object
    REPAIRED = "repaired"  # needed a repair, a salvage, or a non-conforming shape was coerced
    UNUSABLE = "unusable"  # neither scenario nor action could be recovered: scenario and action are "none"


@dataclass(frozen=True)
class ParseResult:
    """A parsed frame and how it was obtained.

    ``UNUSABLE`` results have scenario and action ``none``; they keep any entities that could still be read
    (usually none), because the official scorer scores entities independently of the intent.
    """

    frame: SLUFrame
    status: ParseStatus
    transcript: str | None = None  # the words heard, when the model answers in the "transcript+frame" layout

    @property
    def ok(self) -> bool:
        return self.status is not ParseStatus.UNUSABLE


# Chat/special tokens and Markdown fences are stripped only where they wrap the output (step 2 of parse_output), so that a
# filler which happens to contain one survives even in a truncated output.
_SPECIAL_TOKEN = r"<\|[^|<>]{0,40}\|>"
_WRAPPER_RE = re.compile(rf"^(?:\s*(?:{_SPECIAL_TOKEN}|```[A-Za-z]*))+|(?:(?:{_SPECIAL_TOKEN}|```)\s*)+$")
_TRAILING_COMMA_RE = re.compile(r",\s*([\]}])")
_Q = r"[\"']"  # accept either quote in the salvage patterns (step 4 of parse_output)
_SCENARIO_RE = re.compile(rf"{_Q}scenario{_Q}\s*:\s*{_Q}([^\"']*){_Q}")
_ACTION_RE = re.compile(rf"{_Q}action{_Q}\s*:\s*{_Q}([^\"']*){_Q}")
_INTENT_RE = re.compile(rf"{_Q}intent{_Q}\s*:\s*{_Q}([^\"']*){_Q}")
# The filler is bounded so that a long run of unterminated entity openings costs linear, not quadratic, time.
_ENTITY_RE = re.compile(
    rf"\{{\s*{_Q}type{_Q}\s*:\s*{_Q}([^\"']{{0,200}}){_Q}\s*,\s*{_Q}filler{_Q}\s*:\s*"
    rf"{_Q}((?:[^\"\\]|\\.){{0,1000}}?){_Q}\s*\}}"
)


def _braced_span(text: str) -> str:
    start = text.find("{")
    if start < 0:
        return text
    end = text.rfind("}")
    return text[start : end + 1] if end > start else text[start:]


def _try_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _try_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


_MAX_CUTS = 32  # how many '}' positions, from the end, a truncated output is tried at


def _close_truncated(text: str) -> list[str]:
    """Cut a truncated output back to the end of a complete entity and close the list and the object.

    Candidates run from the last ``}`` backwards (a ``}`` inside a filler is not an entity's end), then the empty
    list; before any entity list, the object is closed where it stops.
    """
    ents = text.find("[")
    if ents < 0:
        head = text.rstrip().rstrip(",")
        return [head + "}"] if head.startswith("{") else []
    out = []
    end = len(text)
    while len(out) < _MAX_CUTS:
        end = text.rfind("}", ents, end)
        if end < 0:
            break
        out.append(text[: end + 1] + "]}")
    out.append(text[: ents + 1] + "]}")
    return out


def _unescape(raw: str) -> str:
    """A salvaged string's JSON escapes decoded (``\\n``, ``\\u00e9``...), or the raw text if that fails."""
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw.replace('\\"', '"')


def _as_str(value: Any) -> str:
    return normalize_text(value) if isinstance(value, str) else ""


def _frame_from_obj(obj: Any) -> tuple[SLUFrame, bool, bool] | None:
    """Validate and normalise a decoded object (what every step of parse_output does with what it decoded).

    Returns ``(frame, conforming, has_intent)`` or None when ``obj`` is no dict. ``conforming`` means the object had
    exactly the target's shape and needed no coercion; ``has_intent`` that a scenario or an action was found.
    """
    if not isinstance(obj, dict):
        return None
    # "transcript" is the optional first key of the transcript+frame layout (models/prompt.py).
    conforming = set(obj) - {"transcript"} == {"scenario", "action", "entities"}
    scenario, action = _as_str(obj.get("scenario")), _as_str(obj.get("action"))
    if (not scenario or not action) and isinstance(obj.get("intent"), str):
        s, a = split_intent(_as_str(obj["intent"]))
        scenario, action = scenario or s, action or a
        conforming = False
    raw_entities = obj.get("entities", [])
    if not isinstance(raw_entities, list):
        raw_entities, conforming = [], False
    entities = []
    for item in raw_entities:
        if not isinstance(item, dict):
            conforming = False
            continue
        etype, filler = _as_str(item.get("type")), _as_str(item.get("filler"))
        if set(item) != {"type", "filler"}:
            conforming = False  # extra keys are dropped: only type and filler are kept
        if etype and filler:
            entities.append(Entity(etype, filler))
        else:
            conforming = False  # an empty filler would still earn word/char distance credit (vector T11 in tests/test_metrics.py)
    has_intent = bool(scenario or action)
    conforming = conforming and bool(scenario) and bool(action)
    return SLUFrame(scenario or NONE_LABEL, action or NONE_LABEL, tuple(entities)), conforming, has_intent


def _salvage(text: str) -> SLUFrame | None:
    scenario = _SCENARIO_RE.search(text)
    action = _ACTION_RE.search(text)
    s = normalize_text(scenario.group(1)) if scenario else ""
    a = normalize_text(action.group(1)) if action else ""
    if not (s and a):
        intent = _INTENT_RE.search(text)
        if intent:
            si, ai = split_intent(normalize_text(intent.group(1)))
            s, a = s or si, a or ai
    if not s and not a:
        return None
    entities = []
    for m in _ENTITY_RE.finditer(text):
        etype, filler = normalize_text(m.group(1)), normalize_text(_unescape(m.group(2)))
        if etype and filler:
            entities.append(Entity(etype, filler))
    return SLUFrame(s or NONE_LABEL, a or NONE_LABEL, tuple(entities))


def parse_output(text: Any) -> ParseResult:
    """Turn a model's text into a frame. Never raises. The attempts, in order, first success wins:

    1. the text itself as JSON, when it starts with ``{`` (a well-formed target is taken as is);
    2. special tokens and Markdown fences that wrap the output are stripped, and the outermost ``{...}`` span is
       read as JSON;
    3. repairs of that span (trailing commas dropped; a truncated output cut back to its last complete entity and
       closed), each read as JSON, then as a Python literal;
    4. a salvage by regular expressions of the scenario, action (or intent) and entities, with either quote.

    Only the first ``MAX_PARSE_CHARS`` characters are looked at (a generation is a few hundred tokens; the bound
    keeps a runaway output from costing more than milliseconds).
    """
    try:
        result = _parse(text)
        heard = _TRANSCRIPT_RE.search(text[:MAX_PARSE_CHARS])
        if heard:
            result = ParseResult(result.frame, result.status, normalize_text(_unescape(heard.group(1))) or None)
        return result
    except Exception:  # noqa: BLE001 - the contract is "never raises"; a bug here must not kill a long eval run
        return ParseResult(NONE_FRAME, ParseStatus.UNUSABLE)


_TRANSCRIPT_RE = re.compile(r'"transcript"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _unusable(entities: tuple[Entity, ...] = ()) -> ParseResult:
    return ParseResult(SLUFrame(NONE_LABEL, NONE_LABEL, entities), ParseStatus.UNUSABLE)


def _parse(text: Any) -> ParseResult:
    if not isinstance(text, str) or not text.strip():
        return _unusable()
    text = text[:MAX_PARSE_CHARS].strip()
    # A well-formed target is taken as is, before any stripping, so that fillers which happen to contain a fence
    # or something shaped like a special token survive unchanged.
    got = _frame_from_obj(_try_json(text)) if text.startswith("{") else None
    if got is not None:
        frame, conforming, has_intent = got
        if not has_intent:
            return _unusable(frame.entities)
        return ParseResult(frame, ParseStatus.CLEAN if conforming else ParseStatus.REPAIRED)

    cleaned = _WRAPPER_RE.sub("", text).strip()
    span = _braced_span(cleaned)
    got = _frame_from_obj(_try_json(span))
    if got is not None:
        frame, conforming, has_intent = got
        if not has_intent:
            return _unusable(frame.entities)
        clean = conforming and span == cleaned
        return ParseResult(frame, ParseStatus.CLEAN if clean else ParseStatus.REPAIRED)

    # Step 3: repairs, each retried with the strict loader first, then the Python-literal one.
    candidates = [_TRAILING_COMMA_RE.sub(r"\1", span)]
    candidates += [_TRAILING_COMMA_RE.sub(r"\1", c) for c in _close_truncated(candidates[0])]
    fallback_entities: tuple[Entity, ...] = ()
    for candidate in candidates:
        for loader in (_try_json, _try_literal):
            got = _frame_from_obj(loader(candidate))
            if got is None:
                continue
            if got[2]:
                return ParseResult(got[0], ParseStatus.REPAIRED)
            fallback_entities = fallback_entities or got[0].entities

    salvaged = _salvage(cleaned)
    if salvaged is not None:
        return ParseResult(salvaged, ParseStatus.REPAIRED)
    return _unusable(fallback_entities)


def slurp_prediction_record(key_value: str, frame: SLUFrame, *, key: str = "file") -> dict:
    """One line of a SLURP prediction file for ``frame`` (``key`` is "file" per recording, "slurp_id" per text)."""
    return {key: key_value, **frame.to_dict()}
