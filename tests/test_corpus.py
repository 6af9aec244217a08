"""The synthetic demo corpus: musical contract, determinism, layout, loudness, meters."""

from __future__ import annotations

import dataclasses
import json
import re

import librosa
import numpy as np
import pytest
import soundfile as sf

from progrock.audio import audio_hash, decode
from progrock.constants import SR
from progrock.corpus import (
    Section,
    SongPlan,
    cue_separability,
    generate_corpus,
    plan_corpus,
    plan_song,
    synthesize_song,
)
from progrock.corpus.generate import _GENRES
from progrock.corpus.music import METERS, drum_pattern
from progrock.errors import ProgrockError

SMALL = dict(n_songs=10, seed=3, difficulty=0.3, prog_fraction=0.3, duration_scale=0.1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    calls = []
    songs = generate_corpus(out, **SMALL, jobs=1, progress=calls.append)
    return out, songs, calls


def _rng(seed):
    return np.random.default_rng(seed)


def test_nonprog_plan_at_difficulty_0_has_one_common_meter_and_one_tempo():
    for seed in range(25):
        plan = plan_song("nonprog", _rng(seed), difficulty=0.0)
        assert len(set(plan.meters)) == 1 and plan.meters[0] in ("4/4", "3/4")
        assert len(set(plan.tempi)) == 1 and plan.tempo_changes == 0
        assert len({s.name for s in plan.sections} & {"verse", "chorus"}) == 2


@pytest.mark.parametrize("difficulty", [0.0, 0.3, 1.0])
def test_prog_plan_has_odd_meter_and_tempo_or_key_change(difficulty):
    for seed in range(25):
        plan = plan_song("prog", _rng(seed), difficulty=difficulty)
        assert any(s.odd for s in plan.sections), plan.meters
        assert plan.tempo_changes + plan.key_changes >= 1


def test_prog_plans_have_quiet_sections_solos_and_sometimes_no_keyboards():
    plans = [plan_song("prog", _rng(seed), difficulty=0.3) for seed in range(60)]
    assert all(any(s.lead_style == "solo" for s in p.sections) for p in plans)
    assert np.mean([any(s.energy == 0 for s in p.sections) for p in plans]) > 0.5
    no_keys = np.mean([not p.keyboards for p in plans])
    assert 0.15 < no_keys < 0.6
    nonprog = [plan_song("nonprog", _rng(seed), difficulty=0.3) for seed in range(60)]
    assert 0.1 < np.mean([bool(p.keyboards) for p in nonprog]) < 0.5


def test_plan_round_trips_through_json():
    plan = plan_song("prog", _rng(7))
    again = SongPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    assert again.to_dict()["summary"]["n_sections"] == len(plan.sections)


def test_bad_arguments_raise_progrock_error(tmp_path):
    with pytest.raises(ProgrockError):
        plan_song("jazz", _rng(0))
    with pytest.raises(ProgrockError):
        plan_song("prog", _rng(0), difficulty=1.5)
    with pytest.raises(ProgrockError):
        plan_song("prog", _rng(0), duration_scale=0)
    with pytest.raises(ProgrockError):
        generate_corpus(tmp_path, n_songs=2, formats=("xyz",))


def test_synthesis_is_deterministic_and_seed_dependent():
    plan = plan_song("prog", _rng(11), duration_scale=0.1)
    y1, y2 = synthesize_song(plan), synthesize_song(plan)
    assert y1.dtype == np.float32 and y1.ndim == 1
    assert audio_hash(y1) == audio_hash(y2)
    replanned = plan_song("prog", _rng(11), duration_scale=0.1)
    assert audio_hash(synthesize_song(replanned)) == audio_hash(y1)
    other = synthesize_song(plan_song("prog", _rng(12), duration_scale=0.1))
    assert audio_hash(other) != audio_hash(y1)
    assert y1.size / SR >= 22.0 and np.isfinite(y1).all() and np.abs(y1).max() <= 1.0
    rms_db = 20 * np.log10(np.sqrt(np.mean(y1.astype(float) ** 2)))
    assert abs(rms_db - (-20.0)) < 0.2


def test_durations_at_scale_015_are_at_least_22_seconds():
    for seed in range(30):
        for label in ("prog", "nonprog"):
            plan = plan_song(label, _rng(seed), duration_scale=0.15)
            assert plan.duration >= 22.0


def test_label_flipping_scales_with_difficulty():
    kw = dict(n_songs=100, seed=5, prog_fraction=0.3, duration_scale=0.1)
    easy = plan_corpus(difficulty=0.0, **kw)
    assert not any(e["flipped"] for e in easy)
    assert all(e["label"] == e["true_label"] for e in easy)
    hard = plan_corpus(difficulty=1.0, **kw)
    flipped = [e for e in hard if e["flipped"]]
    assert len(flipped) == 8
    assert all(e["label"] != e["true_label"] for e in flipped)
    assert all(e["file"].startswith(e["label"] + "/") for e in hard)
    assert sum(e["true_label"] == "prog" for e in hard) == 30


def test_drum_pattern_is_a_backbeat_in_4_4_and_grouped_in_7_8():
    p44 = drum_pattern(METERS["4/4"])
    assert list(p44["kick"]) == [0, 2] and list(p44["snare"]) == [1, 3]
    assert list(p44["hat"]) == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]
    p78 = drum_pattern(METERS["7/8"])
    assert list(p78["kick"]) == [0, 4] and list(p78["snare"]) == [2]
    assert list(p78["accent"]) == [0, 2, 4]


def _drums_only(meter: str) -> np.ndarray:
    base = plan_song("nonprog", _rng(0))
    sec = Section(name="verse", material="verse", bars=14, meter=meter, tempo=120.0, tonic=0,
                  mode="major", energy=1, parts={"drums": "drums"})
    plan = dataclasses.replace(base, sections=[sec], mix={**base.mix, "humanize_ms": 0.0})
    return synthesize_song(plan)


def test_rendered_odd_meter_repeats_every_bar_not_every_four_beats():
    # At 120 BPM a 4/4 bar lasts 2.0 s and a 7/8 bar 1.75 s: the onset envelope's
    # autocorrelation must prefer the song's own bar length.
    def ac_at(y, seconds):
        env = librosa.onset.onset_strength(y=y, sr=SR, hop_length=512)
        env = env - env.mean()
        lag = int(round(seconds * SR / 512))
        return float(np.dot(env[:-lag], env[lag:]) / np.dot(env, env))

    y78, y44 = _drums_only("7/8"), _drums_only("4/4")
    assert ac_at(y78, 1.75) > ac_at(y78, 2.0) + 0.05
    assert ac_at(y44, 2.0) > ac_at(y44, 1.75) + 0.05


def test_generate_corpus_layout_formats_and_loudness(corpus):
    out, songs, calls = corpus
    assert len(songs) == 10 and calls == [1] * 10
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("song_*"))
    assert files == sorted(s["file"] for s in songs)
    assert {f.split("/")[0] for f in files} == {"prog", "nonprog"}
    assert all(re.fullmatch(r"(prog|nonprog)/song_\d{4}\.\w+", f) for f in files)
    assert sum(s["true_label"] == "prog" for s in songs) == 3
    assert {s["format"] for s in songs} == {"mp3", "flac", "ogg", "opus", "wav", "aiff", "m4a"}
    rms = []
    for s in songs:
        audio = decode(s["path"])
        assert audio.sr == SR and audio.duration >= 22.0
        rms.append(20 * np.log10(np.sqrt(np.mean(audio.y.astype(float) ** 2))))
    assert max(rms) - min(rms) < 2.0 and all(abs(r + 20.0) < 1.0 for r in rms)
    flac = next(s for s in songs if s["format"] == "flac")
    assert sf.SoundFile(flac["path"]).genre in _GENRES
    record = json.loads((out / "corpus.json").read_text())
    assert record["seed"] == SMALL["seed"] and record["settings"]["n_songs"] == 10
    assert [r["plan"]["render_seed"] for r in record["songs"]] == \
        [s["plan"]["render_seed"] for s in songs]
    assert all({"true_label", "flipped", "label"} <= set(r) for r in record["songs"])


def test_two_jobs_give_the_same_corpus(corpus, tmp_path):
    out, songs, _ = corpus
    songs2 = generate_corpus(tmp_path, **SMALL, jobs=2)
    strip = [{k: v for k, v in s.items() if k != "path"} for s in songs]
    assert strip == [{k: v for k, v in s.items() if k != "path"} for s in songs2]
    for a, b in zip(songs, songs2):
        assert decode(a["path"]).sha256 == decode(b["path"]).sha256


def test_cue_separability_reports_every_cue(corpus):
    out, songs, _ = corpus
    aucs = cue_separability(songs)
    assert set(aucs) == {"duration", "mean_tempo", "tempo_changes", "keyboards", "n_sections",
                         "rms_loudness", "spectral_centroid_mean"}
    assert all(0.5 <= v <= 1.0 for v in aucs.values())
    record = json.loads((out / "corpus.json").read_text())
    assert cue_separability(record["songs"], root=out) == aucs
