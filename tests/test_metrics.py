"""Song verdicts, metrics and threshold choice on hand-computed examples."""

import numpy as np
import pytest

from progrock.errors import ConfigError
from progrock.evaluation.metrics import (
    balanced_accuracy_at,
    binary_metrics,
    choose_threshold,
    format_confusion,
)
from progrock.evaluation.verdict import describe_rule, song_scores, song_verdict, song_verdicts, song_vote_scores


# --- verdicts -------------------------------------------------------------------------------

def test_vote_tie_counts_as_prog():
    v = song_verdict([0.9, 0.8, 0.1, 0.2])               # 2 of 4 votes
    assert v.vote_fraction == 0.5 and v.is_prog
    assert v.probability == pytest.approx(0.5)
    assert v.n_snippets == 4
    assert not song_verdict([0.9, 0.1, 0.2]).is_prog     # 1 of 3


def test_vote_counts_threshold_itself_as_prog():
    assert song_verdict([0.5, 0.5, 0.0]).is_prog          # p >= threshold votes prog
    assert not song_verdict([0.3, 0.3, 0.0], threshold=0.31).is_prog


def test_mean_rule_differs_from_vote():
    p = [0.95, 0.95, 0.1, 0.1, 0.1]                      # mean 0.44, 2 of 5 votes
    assert not song_verdict(p, rule="vote").is_prog
    assert not song_verdict(p, rule="mean").is_prog
    q = [0.99, 0.99, 0.4, 0.4, 0.4]                      # mean 0.636, 2 of 5 votes
    assert song_verdict(q, rule="mean").is_prog
    assert not song_verdict(q, rule="vote").is_prog
    assert song_verdict(q, rule="mean", threshold=0.6).is_prog
    assert not song_verdict(q, rule="mean", threshold=0.7).is_prog


def test_verdict_errors():
    with pytest.raises(ConfigError):
        song_verdict([])
    with pytest.raises(ConfigError, match="rule"):
        song_verdict([0.5], rule="median")


def test_song_verdicts_equal_per_song_verdicts():
    rng = np.random.default_rng(0)
    n_songs = 12
    song = np.concatenate([np.full(rng.integers(1, 9), i) for i in range(n_songs)])
    rng.shuffle(song)
    probs = rng.uniform(size=song.size)
    for rule in ("vote", "mean"):
        for threshold in (0.3, 0.5, 0.7):
            many = song_verdicts(probs, song, n_songs, threshold=threshold, rule=rule)
            one = [song_verdict(probs[song == i], threshold=threshold, rule=rule) for i in range(n_songs)]
            assert len(many) == n_songs
            for a, b in zip(many, one):
                assert a.is_prog == b.is_prog and a.n_snippets == b.n_snippets
                assert a.probability == pytest.approx(b.probability)
                assert a.vote_fraction == pytest.approx(b.vote_fraction)


def test_song_without_snippets_raises():
    with pytest.raises(ConfigError, match="without snippets"):
        song_verdicts(np.array([0.2, 0.9]), np.array([0, 2]), 3)


def test_vote_score_decides_the_vote_at_every_threshold():
    rng = np.random.default_rng(1)
    n_songs = 30
    song = np.concatenate([np.full(rng.integers(1, 8), i) for i in range(n_songs)])
    probs = np.round(rng.uniform(size=song.size), 2)     # rounding makes ties with thresholds
    scores = song_vote_scores(probs, song, n_songs)
    assert scores[0] == np.sort(probs[song == 0])[::-1][(np.sum(song == 0) + 1) // 2 - 1]
    for t in np.linspace(0.0, 1.0, 101):
        verdicts = song_verdicts(probs, song, n_songs, threshold=t)
        assert np.array_equal(scores >= t, [v.is_prog for v in verdicts]), t


def test_top_rule_hears_a_songs_strongest_fifth_hand_computed():
    # ten snippets: two prog-like passages in a song that is plain otherwise
    p = [0.1, 0.9, 0.2, 0.1, 0.8, 0.2, 0.1, 0.3, 0.2, 0.1]
    top = song_verdict(p, threshold=0.7, rule="top")
    assert top.probability == pytest.approx((0.9 + 0.8) / 2) and top.is_prog
    assert not song_verdict(p, threshold=0.7, rule="mean").is_prog        # the mean, 0.3, dilutes them
    assert not song_verdict(p, threshold=0.7, rule="vote").is_prog
    assert song_verdict(p, threshold=0.7, rule="top").vote_fraction == pytest.approx(0.2)
    # the share is of the song: 3 snippets give ceil(0.6) = 1, 11 give ceil(2.2) = 3
    assert song_verdict([0.2, 0.6, 0.4], rule="top").probability == pytest.approx(0.6)
    eleven = [0.9, 0.8, 0.7] + [0.0] * 8
    assert song_verdict(eleven, rule="top").probability == pytest.approx(0.8)


def test_every_rules_score_decides_its_verdict_at_every_threshold():
    rng = np.random.default_rng(2)
    n_songs = 40
    song = np.concatenate([np.full(rng.integers(1, 25), i) for i in range(n_songs)])
    probs = np.round(rng.uniform(size=song.size), 2)
    for rule in ("vote", "mean", "top"):
        scores = song_scores(probs, song, n_songs, rule=rule)
        for t in np.linspace(0.0, 1.0, 51):
            verdicts = song_verdicts(probs, song, n_songs, threshold=t, rule=rule)
            assert np.array_equal(scores >= t, [v.is_prog for v in verdicts]), (rule, t)
    assert np.array_equal(song_scores(probs, song, n_songs, rule="vote"), song_vote_scores(probs, song, n_songs))
    with pytest.raises(ConfigError, match="unknown verdict rule"):
        song_scores(probs, song, n_songs, rule="max")


def test_each_rule_is_said_in_words_with_its_threshold():
    assert "at least half of its snippets" in describe_rule("vote", 0.42) and "0.42" in describe_rule("vote", 0.42)
    top = describe_rule("top", 0.7)
    assert "strongest passages" in top and "20 %" in top and "0.70" in top
    assert describe_rule("mean", 0.3) == "a song is prog when its probability of prog is ≥ 0.30"


# --- metrics --------------------------------------------------------------------------------

def test_binary_metrics_hand_computed():
    y_true = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    y_pred = [0, 0, 0, 0, 1, 1, 1, 1, 1, 0]
    # tn 4, fp 2, fn 1, tp 3
    m = binary_metrics(y_true, y_pred)
    assert m["confusion"] == [[4, 2], [1, 3]]
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["recall"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 4 / 6) / 2)
    assert m["informedness"] == pytest.approx(0.75 + 4 / 6 - 1)
    assert m["precision"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert m["mcc"] == pytest.approx((3 * 4 - 2 * 1) / np.sqrt(5 * 4 * 6 * 5))
    assert m["roc_auc"] is None
    assert m["n"] == 10 and m["n_prog"] == 4


def test_roc_auc_from_scores():
    m = binary_metrics([0, 0, 1, 1], [0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8])
    assert m["roc_auc"] == pytest.approx(0.75)           # 3 of 4 (pos, neg) pairs ordered


def test_set_without_prog_does_not_crash():
    m = binary_metrics([0, 0, 0, 0], [0, 1, 0, 0], [0.1, 0.7, 0.2, 0.3])
    assert m["confusion"] == [[3, 1], [0, 0]]
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx(0.75)   # mean recall of the classes present
    assert m["recall"] == 0.0 and m["precision"] == 0.0 and m["f1"] == 0.0
    assert m["informedness"] is None and m["roc_auc"] is None
    assert m["mcc"] == 0.0
    assert m["n_prog"] == 0


def test_metrics_reject_bad_labels():
    with pytest.raises(ConfigError):
        binary_metrics([0, 2], [0, 1])
    with pytest.raises(ConfigError):
        binary_metrics([0, 1, 1], [0, 1])


def test_choose_threshold_moves_only_when_it_helps():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert choose_threshold(y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]) == 0.5     # 0.5 already perfect
    t = choose_threshold(y, [0.05, 0.1, 0.2, 0.3, 0.35, 0.4])             # perfect only in (0.2, 0.3)
    assert t == pytest.approx(0.25)
    assert choose_threshold(y, [0.6, 0.7, 0.8, 0.85, 0.9, 0.95]) == pytest.approx(0.825)


def test_choose_threshold_ties_go_to_closest_to_half():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.6, 0.9])
    # below 0.2 all but one nonprog are prog; above 0.6 only the top prog: both 0.75
    bal = balanced_accuracy_at(y, s, [0.15, 0.4, 0.5, 0.75])
    np.testing.assert_allclose(bal, [0.75, 0.5, 0.5, 0.75])
    assert choose_threshold(y, s) == pytest.approx(0.75)       # 0.25 from 0.5 beats 0.35
    assert choose_threshold(y, [0.1, 0.4, 0.8, 0.9]) == pytest.approx(0.25)


def test_choose_threshold_degenerate_cases():
    assert choose_threshold([0, 0, 0], [0.1, 0.9, 0.4]) == 0.5
    assert choose_threshold([0, 1], [0.3, 0.3]) == 0.5


def test_format_confusion():
    text = format_confusion([[40, 2], [3, 11]])
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[-2:] == ["nonprog", "prog"]
    assert lines[1].split() == ["nonprog", "40", "2"]
    assert lines[2].split() == ["prog", "3", "11"]
    with pytest.raises(ConfigError):
        format_confusion([[1, 2, 3]])
