"""Streaming decoding and extraction equal the whole-file path: samples, hash, features."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from progrock.audio import decode, write_audio
from progrock.audio import stream as stream_mod
from progrock.audio.stream import decode_streamed, stream_decode
from progrock.errors import DecodeError
from progrock.features import FeatureConfig, compute_features
from progrock.features import spectral as fast
from progrock.features.cache import FeatureStore
from progrock.features.files import features_from_file, features_from_files
from progrock.features.files import decode_into

from conftest import SR, music


def stereo(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    y = music(seconds, sr=sr, seed=seed, pitch_hz=330.0)
    return np.stack([y, 0.6 * np.roll(y, 123)], axis=1)


# (extension, sample rate, channels, decoder): every path decode() takes.
CASES = [
    ("ogg", 44_100, 2, "soundfile"),
    ("flac", 44_100, 2, "soundfile"),
    ("wav", 48_000, 2, "soundfile"),
    ("aiff", 22_050, 1, "soundfile"),
    ("opus", 48_000, 2, "soundfile"),
    ("mp3", 44_100, 2, "soundfile"),   # read in 65,536-frame blocks
    ("mp3", 48_000, 1, "soundfile"),   # mono MP3: read whole, as decode() does
    ("mp3", 22_050, 2, "soundfile"),   # MPEG-2 rate: read whole
    ("m4a", 44_100, 2, "pyav"),
]


@pytest.mark.parametrize("ext,sr,channels,decoder", CASES)
def test_streamed_samples_and_hash_equal_decode(tmp_path, ext, sr, channels, decoder):
    y = stereo(9.0, sr) if channels == 2 else music(9.0, sr=sr)
    path = write_audio(tmp_path / f"x.{ext}", y, sr)
    whole = decode(path)
    streamed = decode_streamed(path)
    assert streamed.decoder == whole.decoder == decoder
    assert (streamed.source_sr, streamed.channels) == (whole.source_sr, whole.channels)
    assert streamed.y.dtype == np.float32 and len(streamed.y) == len(whole.y) > 0
    np.testing.assert_array_equal(streamed.y, whole.y)
    assert streamed.sha256 == whole.sha256


def test_many_small_blocks_and_more_channels_equal_decode(tmp_path):
    rng = np.random.default_rng(5)
    y = (0.2 * rng.standard_normal((3 * 44_100 + 17, 5))).astype(np.float32)
    path = write_audio(tmp_path / "five.flac", y, 44_100, subtype="PCM_24")
    whole = decode(path)
    streamed = decode_streamed(path, block=1_001)
    assert streamed.channels == 5
    np.testing.assert_array_equal(streamed.y, whole.y)
    assert streamed.sha256 == whole.sha256


@pytest.mark.parametrize("rate", [8_000, 32_000, 44_100, 48_000, 96_000])
def test_soxr_stream_equals_one_shot_resampling_whatever_the_chunks(rate):
    x = np.random.default_rng(rate).standard_normal(200_003).astype(np.float32)
    expected = soxr.resample(x, rate, SR, quality="soxr_hq")
    rs = soxr.ResampleStream(rate, SR, 1, dtype="float32", quality="soxr_hq")
    cuts = np.cumsum([1, 1152, 7, 65_536, 4_096, 20_000])
    parts = [rs.resample_chunk(p) for p in np.split(x, cuts)]
    parts.append(rs.resample_chunk(np.zeros(0, np.float32), last=True))
    np.testing.assert_array_equal(np.concatenate(parts), expected)


@pytest.mark.parametrize("ext", ["ogg", "mp3", "m4a"])
@pytest.mark.parametrize("set_name", ["seed43", "logmel"])
def test_extract_file_equals_features_of_the_decoded_signal(tmp_path, ext, set_name):
    path = write_audio(tmp_path / f"x.{ext}", stereo(14.0, 44_100, seed=2), 44_100)
    config = FeatureConfig.named(set_name)
    audio = decode(path)
    x, h = features_from_file(path, config)
    assert h == audio.sha256
    np.testing.assert_array_equal(x, compute_features(audio.y, config))


def test_spooling_to_disk_gives_the_same_features(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "x.ogg", stereo(20.0, 44_100, seed=3), 44_100)
    expected, h = features_from_file(path, FeatureConfig())
    monkeypatch.setattr(fast, "SPOOL_BYTES", 0)  # everything through the temporary file
    sink, info = decode_into(path, [FeatureConfig()])
    spool = sink.branches[0].acc.frames._spool
    assert spool.bytes_on_disk > 0 and spool.bytes_in_memory == 0
    np.testing.assert_array_equal(sink.branches[0].finish(), expected)
    assert info.sha256 == h


def test_a_cached_hash_skips_the_second_pass(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "x.flac", music(11.0), SR)
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    [first] = features_from_files([path], store)
    finished = []
    monkeypatch.setattr(fast.Seed43Stream, "finish", lambda self: finished.append(1))
    [again] = features_from_files([path], store)
    assert again.status == "cached" and again.audio_sha256 == first.audio_sha256
    assert finished == []


class _Recorder:
    made: list["_Recorder"] = []

    def __init__(self):
        self.n = 0
        self.closed = False
        _Recorder.made.append(self)

    def update(self, y):
        self.n += y.size

    def close(self):
        self.closed = True


def test_libsndfile_failing_part_way_restarts_with_ffmpeg_into_a_fresh_sink(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "x.flac", stereo(6.0, 44_100), 44_100)
    real_read = sf.SoundFile.read
    calls = {"n": 0}

    def failing_read(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise sf.LibsndfileError(1, "simulated read error")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", failing_read)
    _Recorder.made = []
    sink, info = stream_decode(path, _Recorder, block=2**14)
    first, second = _Recorder.made
    assert first.closed and first.n > 0
    assert sink is second and info.decoder == "pyav" and second.n == info.n_samples > 0


def test_undecodable_inputs_raise_decode_errors_like_decode(tmp_path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.ogg"
    garbage.write_bytes(b"OggS" + bytes(range(256)) * 8)
    for p in (tmp_path / "missing.wav", empty, garbage, tmp_path):
        with pytest.raises(DecodeError) as whole:
            decode(p)
        with pytest.raises(DecodeError) as streamed:
            decode_streamed(p)
        assert streamed.value.reason == whole.value.reason and streamed.value.path == str(p)


def test_non_finite_samples_are_refused(tmp_path):
    y = music(3.0)
    y[SR] = np.nan
    path = write_audio(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    with pytest.raises(DecodeError, match="NaN or infinite"):
        decode_streamed(path)


def test_stream_reports_what_decode_reports(tmp_path):
    path = write_audio(tmp_path / "x.ogg", stereo(5.0, 44_100), 44_100)
    _, info = stream_decode(path, stream_mod._Collect)
    audio = decode(path)
    assert (info.sr, info.source_sr, info.channels, info.decoder) == (SR, 44_100, 2, "soundfile")
    assert info.n_samples == len(audio.y) and info.duration == pytest.approx(audio.duration)
