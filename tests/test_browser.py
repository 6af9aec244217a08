"""The page in a real browser: pick or drop songs, see verdicts, barcodes and tooltips.

Drives the system's Chromium (``/usr/bin/chromium``) headless through
Playwright; no browser is ever downloaded. Without Chromium the tests are
skipped, unless ``PROGROCK_REQUIRE_BROWSER=1`` (set by CI), where that is a
failure.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from progrock.model.run import load_run
from progrock.predict import classify_file
from progrock.report.barcode import colour
from progrock.serve import create_app

from test_serve import one_file_per_format, serving

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 120_000          # upper bound for a verdict to appear; never an assertion about speed


def _browser_or_skip(chromium: Path = CHROMIUM):
    """Playwright's sync API if the system browser is there; else skip, or fail where it is required."""
    required = os.environ.get("PROGROCK_REQUIRE_BROWSER") == "1"
    if not chromium.exists():
        reason = f"{chromium} is missing (install Debian's chromium package)"
        if required:
            pytest.fail(f"PROGROCK_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    if required:
        import playwright.sync_api as sync_api
        return sync_api
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def sync_api():
    return _browser_or_skip()


@pytest.fixture(scope="module")
def base_url(tiny_run):
    with serving(create_app(tiny_run.run_dir)) as base:
        yield base


@pytest.fixture(scope="module")
def browser(sync_api):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, base_url):
    """A fresh page on the app; fails the test if it asks anything of another host or logs an error."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    foreign, errors = [], []
    pg.on("request", lambda r: None if r.url.startswith(base_url) or r.url.startswith("data:")
          else foreign.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(base_url + "/")
    yield pg
    context.close()
    assert foreign == [], f"the page loaded from elsewhere: {foreign}"
    assert errors == [], errors


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_run(tiny_run.run_dir)


def _card(page, name: str):
    return page.locator("li.card", has=page.locator(".card-name", has_text=re.compile("^" + re.escape(name) + "$")))


def _check_card_against_api(sync_api, page, model, song: Path) -> dict:
    """The card of ``song`` shows classify_file's verdict and one stripe per snippet in the right colour."""
    expect = sync_api.expect
    want = classify_file(model, song, name=song.name).to_dict()
    card = _card(page, song.name)
    verdict = card.locator(".verdict")
    expect(verdict).to_have_text("Prog" if want["verdict"] == "prog" else "Not prog", timeout=WAIT_MS)
    expect(card.locator(".stat-prob")).to_have_text(f"{want['probability']:.2f}")
    votes = "–" if want["vote_fraction"] is None else f"{round(want['vote_fraction'] * want['n_snippets'])} of {want['n_snippets']}"
    expect(card.locator(".stat-votes")).to_have_text(votes)
    stripes = card.locator("svg.barcode rect.snippet")
    expect(stripes).to_have_count(want["n_snippets"])
    fills = [stripes.nth(i).get_attribute("fill") for i in range(want["n_snippets"])]
    assert fills == [colour(p) for p in want["snippet_probs"]]
    return want


def test_picked_songs_get_verdicts_barcodes_and_tooltips(sync_api, page, model, demo_corpus, tmp_path):
    expect = sync_api.expect
    songs = one_file_per_format(demo_corpus)[:3]
    junk = tmp_path / "not-a-song.mp3"
    junk.write_text("Close to the Edge, but only the lyrics.\n" * 30)
    page.set_input_files("#picker", [str(s) for s in songs] + [str(junk)])

    expect(page.locator("li.card")).to_have_count(len(songs) + 1)
    wanted = [_check_card_against_api(sync_api, page, model, s) for s in songs]

    # The bad file gets its own card with the server's reason; the others are unaffected.
    error = _card(page, junk.name).locator(".card-error")
    expect(error).to_be_visible(timeout=WAIT_MS)
    expect(error).to_contain_text("not a recognised audio file")
    expect(page.locator("#tally")).to_contain_text("1 failed")

    # Hovering a stripe shows that snippet's time range and probability.
    longest = max(range(len(songs)), key=lambda i: wanted[i]["n_snippets"])
    want = wanted[longest]
    i = want["n_snippets"] - 1 if want["n_snippets"] < 3 else 2
    _card(page, songs[longest].name).locator("svg.barcode rect.snippet").nth(i).hover()
    tip = page.locator("#tooltip")
    expect(tip).to_be_visible()
    text = tip.inner_text()
    m = re.search(r"(\d+):(\d\d)–(\d+):(\d\d)", text)
    assert m, text
    start = int(m[1]) * 60 + int(m[2])
    assert abs(start - want["snippet_starts"][i]) <= 1, (text, want["snippet_starts"][i])
    assert f"p(prog) {want['snippet_probs'][i]:.2f}" in text, text
    assert f"snippet {i + 1} of {want['n_snippets']}" in text

    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_dropped_song_is_classified(sync_api, page, model, demo_corpus):
    """A drop event carrying a file (as a file manager's drag and drop does) starts a classification."""
    song = sorted(demo_corpus.rglob("*.flac"))[-1]
    page.evaluate(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: "audio/flac" }));
            const zone = document.getElementById("drop");
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
            }
        }""",
        [song.name, base64.b64encode(song.read_bytes()).decode()],
    )
    _check_card_against_api(sync_api, page, model, song)


def test_keyboard_reaches_the_file_picker_and_the_barcode(sync_api, page, model, demo_corpus):
    """Tab to the button, Enter opens the file chooser; the barcode then takes focus and arrow keys."""
    expect = sync_api.expect
    song = sorted(demo_corpus.rglob("*.wav"))[-1]
    # Playwright turns on file-chooser interception without waiting for the browser's reply; a
    # listener added now (and the round trips below) make sure it is on before Enter is pressed,
    # else a busy machine can open a real, invisible dialog that never reaches the test.
    chosen = []
    page.on("filechooser", lambda fc: chosen.append(fc))
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "choose":
            break
    assert page.evaluate("document.activeElement.id") == "choose"
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple() and len(chosen) == 1
    chooser.value.set_files(str(song))
    want = _check_card_against_api(sync_api, page, model, song)

    barcode = _card(page, song.name).locator("svg.barcode")
    barcode.focus()
    tip = page.locator("#tooltip")
    expect(tip).to_contain_text(f"snippet 1 of {want['n_snippets']}")
    page.keyboard.press("End")
    expect(tip).to_contain_text(f"snippet {want['n_snippets']} of {want['n_snippets']}")
    expect(tip).to_contain_text(f"p(prog) {want['snippet_probs'][-1]:.2f}")


def test_model_description_and_report_link(sync_api, page, model):
    expect = sync_api.expect
    expect(page.locator("#model-summary")).to_contain_text("1D-CNN")
    expect(page.locator("#model-facts")).to_contain_text(f"threshold {model.entries[model.default_model].threshold:.2f}")
    link = page.locator("#report-link")
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("body")).to_contain_text("Confusion matrices")


def test_missing_browser_skips_here_and_fails_where_required(tmp_path, monkeypatch):
    nowhere = tmp_path / "no-chromium"
    monkeypatch.delenv("PROGROCK_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium is missing"):
        _browser_or_skip(nowhere)
    monkeypatch.setenv("PROGROCK_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="PROGROCK_REQUIRE_BROWSER=1"):
        _browser_or_skip(nowhere)
