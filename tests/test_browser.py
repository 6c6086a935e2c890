"""The app in a real browser: Debian's chromium, headless, driven by Playwright (no downloaded browser).

Loads the page, uploads a wav in the Live tab, clicks Parse and sees the parsed intent; uploads a silent clip and
sees the error; opens every tab (and runs the planner). Checks that the page fetches nothing from outside
127.0.0.1 (no fonts, scripts or analytics from the internet). Screenshots go to $APP_TEST_ARTIFACTS, default
``test-artifacts/`` in the repository (git-ignored), for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.test_app_helpers import bad_audio, build_runs, serve

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("APP_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
LOCAL = ("http://127.0.0.1", "data:", "blob:", "about:")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system chromium)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_model_dir):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): the example clips need it")
    from appkit.examples import load_examples, synth_examples
    from appkit.ui import make_state

    root = tmp_path_factory.mktemp("browser")
    runs = build_runs(root / "runs", Path(tiny_model_dir))
    examples = load_examples(synth_examples(root / "cache" / "examples"))
    state = make_state(["demo", str(runs / "curriculum-p50-s1")], str(runs), None, num_beams=1, examples=examples)
    with serve(state) as url:
        yield url, state, examples, root


def idle(page, timeout: int = 120_000) -> None:
    """Wait until no component shows Gradio's "processing" status any more."""
    page.wait_for_timeout(300)
    page.wait_for_function("!document.body.innerText.includes('processing |')", timeout=timeout)
    page.wait_for_timeout(500)


def test_a_user_parses_a_clip_sees_errors_and_opens_every_tab(browser, site):
    url, state, examples, root = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    clip = examples[0].path
    expected = state.parse("demo", clip, "")[0]["intent"]  # the same model on the same clip, called directly
    silent = bad_audio(root / "bad")["silent"][0]

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(LOCAL) else None)
    page.goto(url, wait_until="networkidle")
    assert page.title() == "LALM-SLU"

    # Live: upload a wav, click Parse, see the intent.
    page.set_input_files("#live-audio input[type=file]", clip)
    page.wait_for_selector("#live-audio button[aria-label='Clear']", timeout=60_000)  # the upload has landed
    page.click("#live-parse")
    page.wait_for_selector("#live-result .intent", timeout=120_000)
    assert page.inner_text("#live-result .intent").strip() == expected
    assert "gold intent" in page.inner_text("#live-result")
    page.screenshot(path=str(ARTIFACTS / "1-live.png"), full_page=True)

    # A silent clip: a red error box naming the file and the problem, and the old answer gone.
    page.click("#live-audio button[aria-label='Clear']")
    page.set_input_files("#live-audio input[type=file]", str(silent))
    page.wait_for_selector("#live-audio button[aria-label='Clear']", timeout=60_000)
    page.click("#live-parse")
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=60_000)
    text = toast.inner_text()
    assert "silent.wav" in text and "the audio is silent" in text
    page.wait_for_selector("#live-result >> text=Not parsed", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "2-live-error.png"), full_page=True)
    for close in page.locator(".toast-close").all():
        close.click()

    # Compare: the two default checkpoints on a typed transcript.
    page.get_by_role("tab", name="Compare").click()
    page.fill("#compare-text textarea", "set an alarm for seven am")
    page.click("#compare-run")
    page.wait_for_selector("#compare-note >> text=Differences from", timeout=120_000)
    page.locator("#compare-table").get_by_text("curriculum-p50-s1 (run)", exact=True).first.wait_for(state="attached")
    page.wait_for_selector("#compare-plot .js-plotly-plot", state="attached", timeout=60_000)
    idle(page)
    page.screenshot(path=str(ARTIFACTS / "3-compare.png"), full_page=True)

    # Planner: opens answered; recommend again; budget mode.
    page.get_by_role("tab", name="Planner").click()
    page.wait_for_selector("#planner-summary >> text=Scheme to train", timeout=30_000)
    page.locator("#planner-table").get_by_text("within corpus").first.wait_for(state="attached")
    page.click("#planner-recommend")
    idle(page)
    page.wait_for_selector("#planner-summary >> text=Scheme to train", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "4-planner-target.png"), full_page=True)
    page.get_by_role("tab", name="Budget mode").click()
    page.wait_for_selector("#budget-summary >> text=Spent", timeout=30_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "5-planner-budget.png"), full_page=True)

    # Results: the report with its daggers.
    page.get_by_role("tab", name="Results").click()
    page.wait_for_selector("#results-table >> text=†", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "6-results.png"), full_page=True)
    page.close()
    assert outside == [], f"the page fetched from outside 127.0.0.1: {outside}"
