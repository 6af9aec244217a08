"""The seed's 43 features equal librosa's per-feature calls, with known answers."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from progrock.audio import decode, write_audio
from progrock.constants import SNIPPET_FRAMES
from progrock.errors import ConfigError
from progrock.features import FeatureConfig, compute_features
from progrock.features.reference import reference_seed43

from conftest import SR, music

# Tolerance against librosa: our path feeds librosa's own functions one shared
# power spectrogram, so differences are float32 rounding only. MFCCs and dB
# values span about ±600, chroma and onset about 0..10.
ATOL = 1e-3
RTOL = 1e-5


@pytest.mark.parametrize("ext", ["mp3", "ogg", "flac"])
def test_seed43_equals_librosa_per_feature_calls_on_decoded_files(tmp_path, ext):
    path = write_audio(tmp_path / f"song.{ext}", music(20.0, pitch_hz=392.0, seed=3), SR)
    y, _ = librosa.load(path, sr=SR)          # the reference pipeline, decoding included
    ref = reference_seed43(y, sr=SR)
    ours = compute_features(decode(path).y, FeatureConfig())
    assert ours.shape == ref.shape == (43, 1 + len(y) // 512)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


def test_seed43_rows_in_the_seed_order_with_known_answers(song):
    x = compute_features(song, FeatureConfig())
    names = FeatureConfig().feature_names
    assert names[:2] == ["mfcc_0", "mfcc_1"] and names[20] == "mel_db_0"
    assert names[30] == "chroma_C" and names[39] == "chroma_A" and names[42] == "onset_strength"
    # A4 tone: chroma A dominates.
    assert int(np.argmax(x[30:42].mean(axis=1))) == 9
    # Drum bursts every 0.5 s: onset strength peaks every ~21.5 frames.
    onset = x[42]
    ac = np.correlate(onset - onset.mean(), onset - onset.mean(), mode="full")[len(onset) - 1:]
    lag = 10 + int(np.argmax(ac[10:40]))
    assert abs(lag - 0.5 * SR / 512) <= 1


def test_ten_seconds_give_one_snippet_of_431_frames():
    x = compute_features(music(10.0), FeatureConfig())
    assert x.shape == (43, SNIPPET_FRAMES) and SNIPPET_FRAMES == 431
    assert x.dtype == np.float32 and np.all(np.isfinite(x))


def test_logmel_set_is_selectable(song):
    config = FeatureConfig.named("logmel")
    x = compute_features(song, config)
    assert x.shape[0] == config.n_features == 96
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=song, sr=SR, n_mels=96))
    np.testing.assert_allclose(x, ref, rtol=RTOL, atol=ATOL)


def test_config_key_changes_with_every_parameter():
    base = FeatureConfig()
    keys = {base.key(), FeatureConfig(n_mels=12).key(), FeatureConfig(hop_length=256).key(),
            FeatureConfig(n_fft=4096).key(), FeatureConfig.named("logmel").key()}
    assert len(keys) == 5
    assert FeatureConfig.from_dict(base.to_dict()).key() == base.key()


def test_unknown_feature_set_is_refused():
    with pytest.raises(ConfigError, match="unknown feature set"):
        FeatureConfig(name="mystery")
