"""SLU frames, the JSON target, and the never-raising parser (the attempts listed in data.frames.parse_output).

Run: pytest tests/test_frames.py
"""

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.frames import (
    MAX_PARSE_CHARS,
    NONE_FRAME,
    Entity,
    ParseStatus,
    SLUFrame,
    normalize_text,
    parse_annotation,
    parse_output,
    split_intent,
    strip_annotation,
)

ALARM = SLUFrame("alarm", "set", (Entity("time", "five am"), Entity("date", "tomorrow")))
ALARM_JSON = ALARM.to_target()


# ---------------------------------------------------------------------------------------------------------------
# The frame and its target


def test_target_is_one_line_json_with_fixed_key_order():
    frame = SLUFrame("calendar", "set", [("event_name", "réunion"), ("person", "jessica 's")])
    target = frame.to_target()
    assert "\n" not in target
    assert list(json.loads(target)) == ["scenario", "action", "entities"]
    assert "réunion" in target  # ensure_ascii=False keeps accents readable
    assert SLUFrame.from_dict(json.loads(target)) == frame
    assert frame.intent == "calendar_set"


def test_split_intent_at_first_underscore():
    assert split_intent("iot_hue_lightoff") == ("iot", "hue_lightoff")
    assert split_intent("garbage") == ("garbage", "none")
    assert SLUFrame.from_intent("alarm_set").action == "set"


def test_annotation_parsing_keeps_order_and_duplicates():
    annot = "email [person : David] about the [event_name :  party ] and [person : david]"
    assert parse_annotation(annot) == (
        Entity("person", "david"),
        Entity("event_name", "party"),
        Entity("person", "david"),
    )
    assert strip_annotation(annot) == "email David about the party and david"
    # Only the first " : " separates type and filler.
    assert parse_annotation("at [time : 10 : 30]") == (Entity("time", "10 : 30"),)


# ---------------------------------------------------------------------------------------------------------------
# Example cases from the issue


def test_clean_json_is_clean():
    got = parse_output(ALARM_JSON)
    assert got.status is ParseStatus.CLEAN and got.frame == ALARM and got.ok


def test_code_fences_and_special_tokens_are_stripped():
    got = parse_output(f"```json\n{ALARM_JSON}\n```<|im_end|>")
    assert got.frame == ALARM
    assert got.status is ParseStatus.CLEAN  # stripping wrappers is step 1, not a repair


def test_wrappers_are_stripped_only_around_the_output():
    # A truncated output (not valid JSON) whose filler contains a fence and a brace keeps both.
    text = '<|im_start|>{"scenario": "a", "action": "b", "entities": [{"type": "t", "filler": "x```}"}, {"type": "u'
    got = parse_output(text)
    assert got.frame == SLUFrame("a", "b", (Entity("t", "x```}"),)) and got.status is ParseStatus.REPAIRED
    # A well-formed object whose scenario is a fence is taken as is.
    got = parse_output('{"scenario": "```", "action": "", "entities": []}')
    assert got.frame == SLUFrame("```", "none") and got.status is ParseStatus.REPAIRED


def test_salvaged_fillers_are_unescaped():
    text = '{"scenario": "a", "action": "b" "entities": [{"type": "t", "filler": "caf\\u00e9 \\"x\\""}]'
    assert parse_output(text).frame.entities == (Entity("t", 'café "x"'),)


def test_surrounding_prose_is_a_repair():
    got = parse_output(f"Sure! Here it is: {ALARM_JSON} Hope this helps.")
    assert got.frame == ALARM and got.status is ParseStatus.REPAIRED


def test_truncated_inside_an_entity_keeps_complete_entities():
    text = ALARM_JSON[: ALARM_JSON.index('"tomorrow"') + 4]
    got = parse_output(text)
    assert got.status is ParseStatus.REPAIRED
    assert got.frame == SLUFrame("alarm", "set", (Entity("time", "five am"),))


def test_truncated_after_an_entity():
    text = '{"scenario": "alarm", "action": "set", "entities": [{"type": "time", "filler": "five am"}'
    assert parse_output(text).frame == SLUFrame("alarm", "set", (Entity("time", "five am"),))


def test_truncated_before_the_entity_list():
    got = parse_output('{"scenario": "alarm", "action": "set", "enti')
    assert got.frame == SLUFrame("alarm", "set") and got.status is ParseStatus.REPAIRED
    got = parse_output('{"scenario": "alarm", "act')
    assert got.frame == SLUFrame("alarm", "none") and got.ok


def test_single_quotes_python_dict():
    text = "{'scenario': 'social', 'action': 'post', 'entities': [{'type': 'person', 'filler': \"jessica 's\"}]}"
    got = parse_output(text)
    assert got.status is ParseStatus.REPAIRED
    assert got.frame == SLUFrame("social", "post", (Entity("person", "jessica 's"),))


def test_trailing_commas():
    text = '{"scenario": "alarm", "action": "set", "entities": [{"type": "time", "filler": "five am"},],}'
    got = parse_output(text)
    assert got.status is ParseStatus.REPAIRED
    assert got.frame == SLUFrame("alarm", "set", (Entity("time", "five am"),))


def test_intent_key_instead_of_scenario_action():
    got = parse_output('{"intent": "iot_hue_lightoff", "entities": [{"type": "house_place", "filler": "Kitchen"}]}')
    assert got.status is ParseStatus.REPAIRED
    assert got.frame == SLUFrame("iot", "hue_lightoff", (Entity("house_place", "kitchen"),))


def test_extra_keys_are_dropped_but_counted_as_repair():
    text = (
        '{"scenario": "alarm", "action": "set", "confidence": 0.9,'
        ' "entities": [{"type": "time", "filler": "five am", "span": [3, 4]}]}'
    )
    got = parse_output(text)
    assert got.status is ParseStatus.REPAIRED
    assert got.frame == SLUFrame("alarm", "set", (Entity("time", "five am"),))


def test_non_string_values():
    text = (
        '{"scenario": 3, "action": "set", "entities": [{"type": 1, "filler": "x"}, {"type": "t", "filler": null}, 7]}'
    )
    got = parse_output(text)
    assert got.frame == SLUFrame("none", "set") and got.status is ParseStatus.REPAIRED
    got = parse_output('{"scenario": "alarm", "action": "set", "entities": "tomorrow"}')
    assert got.frame == SLUFrame("alarm", "set") and got.status is ParseStatus.REPAIRED


def test_empty_fillers_and_types_are_dropped():
    text = (
        '{"scenario": "alarm", "action": "set", "entities": [{"type": "time", "filler": "  "},'
        ' {"type": "", "filler": "x"}, {"type": "date", "filler": " To\\tMorrow "}]}'
    )
    got = parse_output(text)
    assert got.frame == SLUFrame("alarm", "set", (Entity("date", "to morrow"),))
    assert got.status is ParseStatus.REPAIRED


@pytest.mark.parametrize("text", ["", "   ", "garbage", "{}", "[]", "null", "{{{{", None, 42, b"{}"])
def test_garbage_is_unusable(text):
    got = parse_output(text)
    assert got.status is ParseStatus.UNUSABLE and got.frame == NONE_FRAME and not got.ok


def test_entities_without_intent_are_unusable_but_kept():
    got = parse_output('{"entities": [{"type": "date", "filler": "today"}]}')
    assert got.status is ParseStatus.UNUSABLE
    assert got.frame == SLUFrame("none", "none", (Entity("date", "today"),))


def test_salvage_from_broken_json():
    text = 'scenario: {"scenario": "weather", "action": "query" "entities": [{"type": "place_name", "filler": "Paris"}'
    got = parse_output(text)
    assert got.status is ParseStatus.REPAIRED
    assert got.frame == SLUFrame("weather", "query", (Entity("place_name", "paris"),))


def test_labels_are_not_snapped_to_an_inventory():
    got = parse_output('{"scenario": "Alarmz", "action": "SET", "entities": []}')
    assert got.frame == SLUFrame("alarmz", "set") and got.status is ParseStatus.CLEAN


@pytest.mark.parametrize(
    "text",
    [
        "x" * 1_000_000,
        ALARM_JSON + " " + "y" * 1_000_000,
        '{"scenario": "a", "action": "b", ' + "{'type': 't', 'filler': 'a" * 50_000,
        "{" * 1_000_000,
        "[" * 1_000_000,
        '{"a":' * 200_000,
        "1" * 1_000_000,
    ],
    ids=["plain", "json-then-junk", "open-entities", "braces", "brackets", "nested", "digits"],
)
def test_a_megabyte_is_fast_and_safe(text):
    start = time.perf_counter()
    got = parse_output(text)
    assert time.perf_counter() - start < 1.0
    assert got.status in ParseStatus
    if text.startswith(ALARM_JSON):
        assert got.frame == ALARM and got.status is ParseStatus.REPAIRED


def test_only_a_bounded_prefix_is_read():
    # A frame beyond the bound is not searched for: the cost of a runaway generation stays bounded.
    got = parse_output(" " * MAX_PARSE_CHARS + ALARM_JSON)
    assert got.status is ParseStatus.UNUSABLE


# ---------------------------------------------------------------------------------------------------------------
# Properties

_FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_normalised = st.text(min_size=1, max_size=20).map(normalize_text).filter(bool)
_entities = st.lists(st.tuples(_normalised, _normalised).map(lambda p: Entity(*p)), max_size=6)
_frames = st.builds(SLUFrame, _normalised, _normalised, _entities.map(tuple))


@_FAST
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text):
    got = parse_output(text)
    assert got.status in ParseStatus
    assert all(e.filler and e.type for e in got.frame.entities)
    assert got.frame.scenario and got.frame.action


@_FAST
@given(st.text(alphabet="{}[]\",:' \\abnult0_-", max_size=300))
def test_never_raises_on_json_like_soup(text):
    got = parse_output(text)
    assert got.status in ParseStatus
    # Everything the parser returns is already normalised.
    for ent in got.frame.entities:
        assert ent.filler == normalize_text(ent.filler) and ent.type == normalize_text(ent.type)


@settings(max_examples=60, deadline=None)
@given(_frames)
def test_round_trip_of_normalised_frames(frame):
    got = parse_output(frame.to_target())
    assert got.status is ParseStatus.CLEAN
    assert got.frame == frame  # order and duplicates kept


@settings(max_examples=60, deadline=None)
@given(_frames, st.integers(min_value=1, max_value=200))
def test_truncation_never_invents_entities(frame, cut):
    """A truncated target yields a prefix of the entities (never a reordering or an invented one)."""
    text = frame.to_target()
    got = parse_output(text[: max(1, len(text) - cut)])
    n = len(got.frame.entities)
    if got.ok:
        assert got.frame.entities == frame.entities[:n]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=12), st.text(max_size=12)),
        max_size=6,
    ),
    st.text(max_size=12),
    st.text(max_size=12),
)
def test_fillers_normalised_and_empty_ones_dropped(pairs, scenario, action):
    raw = {"scenario": scenario, "action": action, "entities": [{"type": t, "filler": f} for t, f in pairs]}
    got = parse_output(json.dumps(raw))
    expected = tuple(
        Entity(normalize_text(t), normalize_text(f)) for t, f in pairs if normalize_text(t) and normalize_text(f)
    )
    if normalize_text(scenario) or normalize_text(action):
        assert got.frame.entities == expected
        assert got.frame.scenario == (normalize_text(scenario) or "none")
    else:
        assert got.status is ParseStatus.UNUSABLE
        assert got.frame.entities == expected


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=2000).map(lambda s: s * 500))
def test_never_raises_on_huge_repetitive_unicode(text):
    assert parse_output(text).status in ParseStatus
