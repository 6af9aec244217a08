"""Snippets: per-class placement, short songs, and the values they carry."""

from __future__ import annotations

import numpy as np
import pytest

from progrock.constants import FRAME_RATE
from progrock.data.snippets import SnippetConfig, SnippetSet, cut_snippets, song_snippets
from progrock.errors import SnippetError


def frames(seconds: float, n_features: int = 43) -> np.ndarray:
    n = 1 + int(seconds * 22050) // 512
    return np.arange(n_features * n, dtype=np.float32).reshape(n_features, n)


def test_seed_placement_over_samples_prog():
    x = frames(120.0)
    config = SnippetConfig()
    prog, prog_starts = song_snippets(x, config, "prog")
    nonprog, nonprog_starts = song_snippets(x, config, "nonprog")
    np.testing.assert_allclose(prog_starts[:3] / FRAME_RATE, [10, 18, 26], atol=0.05)
    np.testing.assert_allclose(nonprog_starts[:3] / FRAME_RATE, [10, 22, 34], atol=0.05)
    # (120 - 10 - 10) / 8 + 1 = 13 and (120 - 10 - 10) / 12 + 1 = 9
    assert len(prog) == 13 and len(nonprog) == 9
    assert prog.shape[1:] == (43, 431)


def test_snippets_are_exact_slices():
    x = frames(40.0)
    snips, starts = cut_snippets(x, length=431, start=100, hop=200)
    for s, st in zip(snips, starts):
        np.testing.assert_array_equal(s, x[:, st:st + 431])


def test_start_gives_way_when_song_is_short():
    x = frames(15.0)  # 10 s start + 10 s snippet does not fit
    snips, starts = song_snippets(x, SnippetConfig(), "prog")
    assert len(snips) == 1 and starts[0] == x.shape[1] - 431


def test_song_shorter_than_a_snippet_is_looped():
    x = frames(4.0)
    snips, starts = song_snippets(x, SnippetConfig(), "nonprog")
    assert snips.shape == (1, 43, 431) and starts[0] == 0
    n = x.shape[1]
    np.testing.assert_array_equal(snips[0, :, :n], x)
    np.testing.assert_array_equal(snips[0, :, n:2 * n], x)


def test_song_below_minimum_is_rejected_with_its_name():
    with pytest.raises(SnippetError, match=r"clip\.mp3.*too short"):
        song_snippets(frames(1.0), SnippetConfig(), "prog", name="clip.mp3")


def test_snippet_set_keeps_song_index_and_lists_skipped():
    skipped = []
    s = SnippetSet.from_songs([("a", frames(60.0), "prog"), ("tiny", frames(0.5), "prog"),
                               ("b", frames(30.0), "nonprog")], SnippetConfig(), skipped=skipped)
    assert s.songs == ["a", "b"] and [n for n, _ in skipped] == ["tiny"]
    assert set(s.song[s.y == 1]) == {0} and set(s.song[s.y == 0]) == {1}
    # Without class: the predict placement (10 s in, 5 s hop) for both.
    u = SnippetSet.from_songs([("a", frames(60.0), None)], SnippetConfig(), by_class=False)
    assert len(u) == 9 and u.song_labels[0] == -1


def test_a_frame_rate_other_than_the_features_is_refused():
    from progrock.errors import ConfigError
    from progrock.features import FeatureConfig

    SnippetConfig().check_frame_rate(FeatureConfig())
    with pytest.raises(ConfigError, match="frames/s"):
        SnippetConfig().check_frame_rate(FeatureConfig(hop_length=256))
    with pytest.raises(ConfigError, match="frames/s"):
        SnippetConfig(frame_rate=40.0).check_frame_rate(FeatureConfig())
