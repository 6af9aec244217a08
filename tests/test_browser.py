"""The page in a real browser: pick or drop songs, see verdicts, barcodes and tooltips, hear the
snippets, read what the model knows, export the results.

Drives the system's Chromium (``/usr/bin/chromium``) headless through
Playwright; no browser is ever downloaded. Without Chromium the tests are
skipped, unless ``PROGROCK_REQUIRE_BROWSER=1`` (set by CI), where that is a
failure.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from progrock.evaluation.verdict import SongResult
from progrock.model.run import load_run
from progrock.predict import classify_file, open_run
from progrock.report.barcode import colour
from progrock.report.table import row_of, write_header
from progrock.serve import create_app

from conftest import real_songs
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


@contextlib.contextmanager
def opened(browser, base_url: str):
    """A fresh page on the app at ``base_url``; fails if it asks anything of another host or logs an error.

    ``blob:`` URLs of the page's own origin are the user's files (snippets played) and the exports.
    """
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    foreign, errors = [], []
    own = (base_url, "blob:" + base_url, "data:")
    pg.on("request", lambda r: None if r.url.startswith(own) else foreign.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(base_url + "/")
    yield pg
    context.close()
    assert foreign == [], f"the page loaded from elsewhere: {foreign}"
    assert errors == [], errors


@pytest.fixture
def page(browser, base_url):
    with opened(browser, base_url) as pg:
        yield pg


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_run(tiny_run.run_dir)


def _card(page, name: str):
    return page.locator("li.card", has=page.locator(".card-name", has_text=re.compile("^" + re.escape(name) + "$")))


def _check_card_against_api(sync_api, page, model, song: Path, model_name: str | None = None) -> dict:
    """The card of ``song`` shows classify_file's verdict and one stripe per snippet in the right colour."""
    expect = sync_api.expect
    want = classify_file(model, song, name=song.name, model=model_name).to_dict()
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


# ---- what the model knows -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def musicnn_url():
    """The built-in run ``musicnn`` (the pretrained tagger, zero-shot), served like a trained run."""
    with serving(create_app("musicnn")) as base:
        yield base


def _pick(page, paths) -> None:
    page.set_input_files("#picker", [str(p) for p in paths])


def _choose_model(sync_api, page, name: str) -> None:
    """Pick one of the run's models in the page's selector (sent as ?model= with the next uploads)."""
    sync_api.expect(page.locator(f'#model-select option[value="{name}"]')).to_have_count(1)
    page.select_option("#model-select", name)


def _api_model(page, base_url: str) -> dict:
    r = page.request.get(base_url + "/api/model")
    assert r.ok
    return r.json()


def test_warning_and_model_card_for_a_run_trained_on_the_demo(sync_api, page, base_url):
    expect = sync_api.expect
    info = _api_model(page, base_url)
    assert info["trained_on"]["synthetic"] and info["warning"]
    warning = page.locator("#run-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("never heard real music")
    expect(page.locator("#about-warning")).to_contain_text(info["warning"])
    assert warning.bounding_box()["y"] < page.locator("#drop").bounding_box()["y"]   # above everything to do

    # The headline: the default model's test figure, its interval (or why there is none), the songs.
    bal, head = info["metrics"]["balanced_accuracy"], page.locator("#model-headline")
    expect(head).to_contain_text(f"Balanced accuracy on {bal['n']} test songs")
    expect(head).to_contain_text(f"{bal['value']:.2f}")
    expect(head).to_contain_text(f"95 % interval {bal['low']:.2f}–{bal['high']:.2f}" if bal["low"] is not None
                                 else "no 95 % interval")
    songs = info["trained_on"]["songs"]
    expect(page.locator("#model-trained")).to_contain_text(
        f"{songs['prog'] + songs['nonprog']} songs ({songs['prog']} prog, {songs['nonprog']} not prog) "
        "of progrock's synthetic demo corpus")

    # Every model of the run, the default marked; the selector offers them, the default chosen.
    items = page.locator("#model-list li")
    expect(items).to_have_count(len(info["models"]))
    for name, m in info["models"].items():
        expect(page.locator("#model-list")).to_contain_text(m["title"])
    expect(page.locator("#model-list li.is-default")).to_contain_text(info["models"][info["default_model"]]["title"])
    options = page.locator("#model-select option")
    assert [options.nth(i).get_attribute("value") for i in range(options.count())] == list(info["models"])
    assert page.locator("#model-select").input_value() == info["default_model"]


def _familiar_demo_song(model, demo_corpus) -> tuple[Path, dict]:
    for song in sorted(demo_corpus.rglob("*.flac")):
        want = classify_file(model, song, name=song.name).to_dict()
        if want["unfamiliar"] is False:
            return song, want
    pytest.fail("no demo song is familiar to a run trained on the demo corpus")


def test_real_recording_is_flagged_unlike_the_training_music(sync_api, page, model, demo_corpus):
    expect = sync_api.expect
    real = Path(real_songs()[0])
    familiar, _ = _familiar_demo_song(model, demo_corpus)
    want = classify_file(model, real, name=real.name).to_dict()
    assert want["unfamiliar"] is True, "a real recording should be unlike the synthetic training songs"
    _pick(page, [real, familiar])

    card = _card(page, real.name)
    expect(card.locator(".verdict")).to_have_text("Prog" if want["verdict"] == "prog" else "Not prog",
                                                  timeout=WAIT_MS)
    flag = card.locator(".card-flag")
    expect(flag).to_be_visible()
    expect(flag).to_have_text("unlike the training music")
    assert f"familiarity {want['familiarity']:.2f}" in flag.get_attribute("title")
    expect(card.locator(".verdict")).to_have_class(re.compile(r"\bis-unsure\b"))

    other = _card(page, familiar.name)
    expect(other.locator(".verdict")).to_be_visible(timeout=WAIT_MS)
    expect(other.locator(".card-flag")).to_be_hidden()
    expect(other.locator(".verdict")).not_to_have_class(re.compile(r"\bis-unsure\b"))


def test_song_level_model_chosen_on_the_page(sync_api, page, model, demo_corpus):
    """?model= from the selector; a model without snippets says so, shows "–" votes and what pushed it."""
    expect = sync_api.expect
    _choose_model(sync_api, page, "logreg")
    song = sorted(demo_corpus.rglob("*.ogg"))[-1]
    want = classify_file(model, song, name=song.name, model="logreg").to_dict()
    assert want["vote_fraction"] is None and want["n_snippets"] == 0 and want["explanation"]
    _pick(page, [song])

    card = _card(page, song.name)
    expect(card.locator(".stat-prob")).to_have_text(f"{want['probability']:.2f}", timeout=WAIT_MS)
    expect(card.locator(".card-model")).to_contain_text(model.entries["logreg"].title)
    expect(card.locator(".stat-votes")).to_have_text("–")
    expect(card.locator(".whole-song")).to_contain_text("this model judges the whole song", ignore_case=True)
    expect(card.locator("svg.barcode")).to_have_count(0)

    # Every input of the explanation, those pushing towards the verdict first, marked by direction.
    chips = card.locator(".explain .chip")
    expect(chips).to_have_count(len(want["explanation"]))
    with_verdict = [(e["push"] > 0) == (want["verdict"] == "prog") for e in want["explanation"]]
    order = [e for e, w in zip(want["explanation"], with_verdict) if w] + \
            [e for e, w in zip(want["explanation"], with_verdict) if not w]
    shown = [(chips.nth(i).inner_text().rsplit(" ", 1)[0], chips.nth(i).get_attribute("class"))
             for i in range(chips.count())]
    assert [name for name, _ in shown] == [e["input"] for e in order]
    assert [("towards-prog" in cls) for _, cls in shown] == [e["push"] > 0 for e in order]


# ---- hearing the evidence -----------------------------------------------------------------------

_AUDIO = """() => { const a = document.getElementById("player");
                    const note = document.querySelector(".play-note.is-error");
                    return { t: a.currentTime, paused: a.paused, src: a.src, error: note && note.textContent,
                             playing: Array.from(document.querySelectorAll("rect.snippet.is-playing"),
                                                 (r) => [r.closest(".card").querySelector(".card-name").textContent,
                                                         Number(r.dataset.index)]) }; }"""


def _wait_audio(page, condition: str) -> dict:
    """Wait until the player's state meets ``condition`` (JS over ``s``, see _AUDIO) or the page says it cannot play."""
    page.wait_for_function(f"() => {{ const s = ({_AUDIO})(); return !!s.error || ({condition}); }}", timeout=30_000)
    state = page.evaluate(_AUDIO)
    assert not state["error"], state["error"]
    return state


def test_a_stripe_plays_its_snippet_from_the_users_file(sync_api, page, model, demo_corpus, base_url):
    expect = sync_api.expect
    a, b = sorted(demo_corpus.rglob("*.wav"), key=lambda p: p.stat().st_size)[-2:]
    _choose_model(sync_api, page, "cnn")
    _pick(page, [a, b])
    want = _check_card_against_api(sync_api, page, model, a, "cnn")
    _check_card_against_api(sync_api, page, model, b, "cnn")
    assert want["n_snippets"] >= 2 and want["snippet_starts"][0] + want["snippet_seconds"] < want["duration"] - 1
    server = []
    page.on("request", lambda r: server.append(r.url) if r.url.startswith(base_url) else None)
    stripes = _card(page, a.name).locator("svg.barcode rect.snippet")

    # A click plays that snippet from its start; the stripe is marked; a second click stops it.
    start, end = want["snippet_starts"][1], want["snippet_starts"][1] + want["snippet_seconds"]
    stripes.nth(1).click()
    s = _wait_audio(page, f"!s.paused && s.t > {start}")
    assert start <= s["t"] < end and s["playing"] == [[a.name, 1]], s
    assert s["src"].startswith("blob:" + base_url)
    stripes.nth(1).click()
    s = _wait_audio(page, "s.paused")
    assert s["playing"] == [], s

    # From the keyboard: Home, Space plays the first snippet; it stops by itself at the snippet's end.
    _card(page, a.name).locator("svg.barcode").focus()
    page.keyboard.press("Home")
    page.keyboard.press(" ")
    s = _wait_audio(page, f"!s.paused && s.t > {want['snippet_starts'][0]}")
    assert s["playing"] == [[a.name, 0]], s
    end = want["snippet_starts"][0] + want["snippet_seconds"]
    page.evaluate(f"() => {{ document.getElementById('player').currentTime = {end - 0.4}; }}")
    s = _wait_audio(page, "s.paused")
    assert end - 0.05 <= s["t"] < want["duration"] - 0.5, s       # stopped at the snippet's end, not the song's
    assert s["playing"] == [], s

    # One snippet at a time: another song's stripe takes over from this one.
    stripes.nth(0).click()
    _wait_audio(page, "!s.paused")
    _card(page, b.name).locator("svg.barcode rect.snippet").nth(0).click()
    s = _wait_audio(page, f"!s.paused && s.playing.length === 1 && s.playing[0][0] === {json.dumps(b.name)}")
    assert s["playing"] == [[b.name, 0]], s
    expect(_card(page, a.name).locator(".play-note")).to_be_hidden()
    page.keyboard.press("Escape")
    _card(page, b.name).locator("svg.barcode rect.snippet").nth(0).click()
    _wait_audio(page, "s.paused")
    assert server == [], f"playing asked the server for {server}"


# ---- keeping the results ------------------------------------------------------------------------

def _download(page, button: str) -> str:
    with page.expect_download() as dl:
        page.click(button)
    return Path(dl.value.path()).read_bytes().decode("utf-8")


def _python_csv(results: list[dict]) -> str:
    """What ``progrock predict --csv`` writes for these results."""
    buf = io.StringIO(newline="")
    writer = write_header(buf)
    for r in results:
        writer.writerow(row_of(r["path"], SongResult(**r)))
    return buf.getvalue()


def _show(page, value: str) -> None:
    page.locator("#filter label", has=page.locator(f'input[value="{value}"]')).click()


def test_exports_and_filter(sync_api, page, model, demo_corpus, tmp_path):
    expect = sync_api.expect
    by_verdict: dict[str, tuple[Path, dict]] = {}
    for song in sorted(demo_corpus.rglob("*.flac")) + sorted(demo_corpus.rglob("*.mp3")):
        want = classify_file(model, song, name=song.name).to_dict()
        by_verdict.setdefault(want["verdict"], (song, want))
        if len(by_verdict) == 2:
            break
    assert set(by_verdict) == {"prog", "nonprog"}
    # A name with a comma and quotes, which the CSV must quote as Python's csv module does.
    odd = tmp_path / 'Yes, "Roundabout".flac'
    shutil.copy(by_verdict["nonprog"][0], odd)
    junk = tmp_path / "not-a-song.ogg"
    junk.write_bytes(b"OggS but not really\n" * 20)
    songs = [by_verdict["prog"][0], odd, by_verdict["nonprog"][0], junk]
    # Browsers send '"' in a file name as %22 (HTML's multipart/form-data encoding); the API turns it
    # back, so the exports carry the file's own name.
    wanted = [by_verdict["prog"][1], dict(by_verdict["nonprog"][1], path=odd.name),
              by_verdict["nonprog"][1]]
    _pick(page, songs)
    expect(page.locator("li.card[data-state=pending]")).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("#tally")).to_contain_text("1 failed")

    # All of them: the CSV as the command line writes it, the JSON as the API answered, in page order.
    assert _download(page, "#export-csv") == _python_csv(wanted)
    records = json.loads(_download(page, "#export-json"))
    assert records[:3] == wanted
    assert records[3]["path"] == junk.name and "not a recognised audio file" in records[3]["error"]
    assert len(records) == 4

    # The filter shows the cards of its kind only, and the exports follow it.
    cards = {s.name: _card(page, s.name) for s in songs}
    shown_by = {"prog": [songs[0].name], "nonprog": [odd.name, songs[2].name], "error": [junk.name],
                "all": [s.name for s in songs]}
    for value in ("prog", "error", "nonprog", "all"):
        _show(page, value)
        for name, card in cards.items():
            (expect(card).to_be_visible if name in shown_by[value] else expect(card).to_be_hidden)()
        if value == "nonprog":
            assert _download(page, "#export-csv") == _python_csv(wanted[1:])
            assert json.loads(_download(page, "#export-json")) == wanted[1:]
    expect(page.locator("#filter")).to_contain_text("failed (1)")


def test_csv_numbers_and_quoting_equal_pythons(page):
    """Edge cases the songs above may not hit: exact ties at 3 decimals, tiny and whole numbers, quoting."""
    results = [
        SongResult(path='a, "b"\r\nc.flac', verdict="prog", probability=0.0625, vote_fraction=None, n_snippets=5,
                   duration=24.0, snippet_probs=[0.0625, 0.1875, 0.3125, 0.9375, 0.0005, 0.0, 1.0],
                   model="structure").to_dict(),
        SongResult(path="plain.mp3", probability=5e-05, vote_fraction=1.0, n_snippets=1, duration=0.1 + 0.2,
                   snippet_probs=[0.12345, 0.99951], model="cnn").to_dict(),
    ]
    got = page.evaluate("async (rows) => (await import('/static/export.js')).csvText(rows)", results)
    assert got == _python_csv(results)


# ---- tags ---------------------------------------------------------------------------------------

def test_tags_checkbox_shows_what_the_tagger_hears(sync_api, browser, musicnn_url, demo_corpus):
    expect = sync_api.expect
    tagger = open_run("musicnn")
    song = min(demo_corpus.rglob("*.flac"), key=lambda p: p.stat().st_size)
    want = classify_file(tagger, song, name=song.name, tags=True).to_dict()
    top = sorted(want["tags"].items(), key=lambda kv: -kv[1])[:5]
    with opened(browser, musicnn_url) as page:
        # The built-in run: no warning, no test figure of its own.
        expect(page.locator("#model-headline")).to_contain_text("No test figure")
        expect(page.locator("#run-warning")).to_be_hidden()

        _pick(page, [song])                      # unchecked: no tags asked, none shown
        card = _card(page, song.name).nth(0)
        expect(card.locator(".verdict")).to_be_visible(timeout=WAIT_MS)
        expect(card.locator(".tags")).to_be_hidden()

        page.check("#tags-toggle")
        _pick(page, [song])
        card = _card(page, song.name).nth(1)
        expect(card.locator(".verdict")).to_be_visible(timeout=WAIT_MS)
        chips = card.locator(".tags .chip")
        expect(chips).to_have_count(5)
        shown = [chips.nth(i).inner_text().rsplit(" ", 1) for i in range(5)]
        assert [name for name, _ in shown] == [tag for tag, _ in top]
        assert all(abs(float(p) - q) <= 0.0051 for (_, p), (_, q) in zip(shown, top)), (shown, top)


# ---- the colour scale ---------------------------------------------------------------------------

def _luminance(hex_or_rgb: str) -> float:
    """WCAG relative luminance of ``#rrggbb`` or ``rgb(r, g, b)``."""
    if hex_or_rgb.startswith("#"):
        channels = [int(hex_or_rgb[i:i + 2], 16) for i in (1, 3, 5)]
    else:
        channels = [int(float(v)) for v in re.findall(r"[\d.]+", hex_or_rgb)[:3]]
    lin = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)))
    return (lb + 0.05) / (la + 0.05)


def test_colour_scale_equals_the_reports_and_zero_is_visible(sync_api, page, model, demo_corpus):
    expect = sync_api.expect
    ps = [i / 200 for i in range(201)] + [-0.5, 1.5, 0.0625, 0.1875, 0.3125, 0.4375]
    js = page.evaluate("async (ps) => { const m = await import('/static/barcode.js'); return ps.map(m.colour); }", ps)
    assert js == [colour(p) for p in ps]

    song = sorted(demo_corpus.rglob("*.wav"))[0]
    _choose_model(sync_api, page, "cnn")
    _pick(page, [song])
    _check_card_against_api(sync_api, page, model, song, "cnn")
    box = _card(page, song.name).locator("svg.barcode")
    # p = 0 stands out from what surrounds a stripe: the page, the card and the hatched "no snippet here".
    around = page.evaluate("""() => [getComputedStyle(document.documentElement).backgroundColor,
                                     getComputedStyle(document.querySelector("li.card")).backgroundColor]""")
    around += [box.locator(".hatch-paper").get_attribute("fill"), box.locator(".hatch-line").get_attribute("stroke")]
    for c in around:
        assert _contrast(colour(0.0), c) >= 1.8, (colour(0.0), c, _contrast(colour(0.0), c))

    # The legend shows the whole scale, 0 to 1, in those colours.
    ramp = page.locator(".legend-ramp")
    expect(ramp).to_be_visible()
    image = ramp.evaluate("(el) => getComputedStyle(el).backgroundImage")
    rgb = lambda h: "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (1, 3, 5)))  # noqa: E731
    assert rgb(colour(0.0)) in image and rgb(colour(1.0)) in image, image
    ticks = page.locator(".legend-ticks span")
    expect(ticks.first).to_have_text("0")
    expect(ticks.last).to_have_text("1")
    assert ticks.last.bounding_box()["x"] + ticks.last.bounding_box()["width"] >= \
        ramp.bounding_box()["x"] + ramp.bounding_box()["width"] - 2
