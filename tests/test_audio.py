"""Decoding every format to mono float32 at 22,050 Hz; tags and names never matter."""

from __future__ import annotations

import os

import librosa
import numpy as np
import pytest

from progrock.audio import FORMATS, decode, find_audio_files, load, write_audio
from progrock.errors import DecodeError, ProgrockError
from progrock.features import FeatureConfig, compute_features

from conftest import SR, music


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_every_format_decodes_to_mono_22050(tmp_path, song, ext):
    path = write_audio(tmp_path / f"song.{ext}", song, SR)
    audio = decode(path)
    assert audio.sr == SR
    assert audio.y.dtype == np.float32 and audio.y.ndim == 1
    # Encoders add at most a few tens of ms of padding (AAC priming, MP3 frames).
    assert abs(audio.duration - len(song) / SR) < 0.1
    # The content survives: the strongest chroma bin is A (440 Hz).
    chroma = librosa.feature.chroma_stft(y=audio.y, sr=SR).mean(axis=1)
    assert int(np.argmax(chroma)) == 9


def test_stereo_is_averaged_and_44k_resampled_like_librosa(tmp_path):
    left = music(seed=1, pitch_hz=330.0, sr=44_100)
    right = music(seed=2, pitch_hz=523.0, sr=44_100)
    path = write_audio(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 44_100,
                       subtype="FLOAT")
    audio = decode(path)
    assert (audio.source_sr, audio.channels) == (44_100, 2)
    ref, ref_sr = librosa.load(path, sr=SR, mono=True)
    assert ref_sr == SR
    np.testing.assert_array_equal(audio.y, ref)


def test_load_matches_librosa_load_on_mp3(tmp_path, song):
    path = write_audio(tmp_path / "x.mp3", song, SR)
    y, sr = load(path)
    ref, _ = librosa.load(path, sr=SR)
    np.testing.assert_array_equal(y, ref)


def test_features_ignore_tags_and_file_name(tmp_path, song):
    """Metadata is never used: other tags and another name give identical features."""
    for ext in ("mp3", "flac", "ogg", "m4a"):
        a = write_audio(tmp_path / f"Yes - Roundabout (prog).{ext}", song, SR,
                        tags={"title": "Roundabout", "artist": "Yes", "genre": "Progressive Rock"})
        b = write_audio(tmp_path / f"track01.{ext}", song, SR,
                        tags={"title": "Something else", "artist": "Nobody", "genre": "Pop",
                              "comment": "x" * 500})
        assert os.path.getsize(a) != os.path.getsize(b)  # the tags really differ
        da, db = decode(a), decode(b)
        assert da.sha256 == db.sha256
        config = FeatureConfig()
        np.testing.assert_array_equal(compute_features(da.y, config), compute_features(db.y, config))


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(50_000)), "not a recognised audio file"),
    (lambda p: p.write_text("just some text, not a FLAC file\n" * 20), "not a recognised audio file"),
    (lambda p: p.mkdir(), "is a folder"),
])
def test_bad_files_raise_decode_error_naming_file_and_reason(tmp_path, make, reason):
    path = tmp_path / "bad song.mp3"
    make(path)
    with pytest.raises(DecodeError) as info:
        decode(path)
    assert str(path) in str(info.value)
    assert reason in info.value.reason
    assert isinstance(info.value, ProgrockError)


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="no such file"):
        decode(tmp_path / "nothing.flac")


def test_find_audio_files_walks_nested_folders_and_skips_folders_named_like_audio(tmp_path, song):
    write_audio(tmp_path / "a" / "b" / "one.flac", song, SR)
    write_audio(tmp_path / "two.ogg", song, SR)
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "dir.mp3").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)]
    assert found == ["a/b/one.flac", "two.ogg"]


def test_long_songs_write_and_decode_in_every_format(tmp_path):
    """libsndfile's Vorbis encoder segfaults on one long write; we write in blocks.

    Runs in a child process so that a crash fails this test instead of the run.
    """
    import subprocess
    import sys

    code = (
        "import numpy as np, sys\n"
        "from progrock.audio import FORMATS, decode, write_audio\n"
        "y = (0.1 * np.random.default_rng(0).standard_normal(22050 * 200)).astype('f4')\n"
        "for ext in sorted(FORMATS):\n"
        "    d = decode(write_audio(sys.argv[1] + '/long.' + ext, y, 22050)).duration\n"
        "    assert abs(d - 200.0) < 0.1, (ext, d)\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])
