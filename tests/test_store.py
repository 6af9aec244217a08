"""The feature cache: keyed by decoded audio and configuration, atomic, resumable."""

from __future__ import annotations

import numpy as np

from progrock.audio import write_audio
from progrock.features import FeatureConfig
from progrock.features.cache import FeatureStore
from progrock.features.files import features_from_file, features_from_files

from conftest import SR, music


def test_renamed_or_retagged_file_is_a_hit_and_changed_config_a_miss(tmp_path):
    a = write_audio(tmp_path / "a.flac", music(12.0), SR, tags={"title": "one"})
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    [first] = features_from_files([a], store)
    assert first.status == "computed"
    b = write_audio(tmp_path / "renamed copy.flac", music(12.0), SR, tags={"title": "two", "genre": "Pop"})
    [again] = features_from_files([b], store)
    assert again.status == "cached" and again.audio_sha256 == first.audio_sha256
    other = FeatureStore(tmp_path / "cache", FeatureConfig(n_mels=12))
    [changed] = features_from_files([b], other)
    assert changed.status == "computed"
    assert other.get(first.audio_sha256).shape[0] == 45
    assert store.get(first.audio_sha256).shape[0] == 43


def test_cached_values_equal_fresh_extraction(tmp_path):
    p = write_audio(tmp_path / "x.ogg", music(11.0, seed=4), SR)
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    [res] = features_from_files([p], store)
    fresh, h = features_from_file(p, FeatureConfig())
    assert h == res.audio_sha256
    np.testing.assert_array_equal(store.get(h), fresh)


def test_known_hash_skips_decoding(tmp_path):
    p = write_audio(tmp_path / "x.wav", music(11.0), SR)
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    [res] = features_from_files([p], store)
    p.unlink()  # a hit by hash must not even open the file
    [again] = features_from_files([p], store, known_hashes=[res.audio_sha256])
    assert again.status == "cached"


def test_undecodable_file_is_reported_and_never_cached(tmp_path):
    good = write_audio(tmp_path / "good.mp3", music(11.0), SR)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3" + b"\0" * 2000)
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    results = features_from_files([bad, good], store, jobs=2)
    assert [r.status for r in results] == ["failed", "computed"]
    assert results[0].error and results[0].path == str(bad)
    entries = list(store.folder.rglob("*.npy"))
    assert entries == [store.path(results[1].audio_sha256)]


def test_broken_entry_is_a_miss_and_is_recomputed(tmp_path):
    p = write_audio(tmp_path / "x.flac", music(11.0), SR)
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    [res] = features_from_files([p], store)
    entry = store.path(res.audio_sha256)
    entry.write_bytes(entry.read_bytes()[:200])  # as if cut off mid-write by another tool
    assert store.get(res.audio_sha256) is None and not entry.exists()
    [again] = features_from_files([p], store)
    assert again.status == "computed" and store.get(res.audio_sha256) is not None


def test_leftover_temporary_file_is_never_read_and_run_resumes(tmp_path):
    paths = [write_audio(tmp_path / f"s{i}.ogg", music(11.0, seed=i), SR) for i in range(3)]
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    done = features_from_files(paths[:2], store)  # a run that stopped after two songs
    h = done[0].audio_sha256
    # A killed writer leaves only a temporary file, never a final entry.
    (store.path("f" * 32).parent).mkdir(parents=True, exist_ok=True)
    (store.path("f" * 32).parent / f".{'f' * 32}.123.tmp").write_bytes(b"partial")
    assert store.get("f" * 32) is None
    resumed = features_from_files(paths, store, jobs=2)
    assert [r.status for r in resumed] == ["cached", "cached", "computed"]
    assert store.get(h) is not None
