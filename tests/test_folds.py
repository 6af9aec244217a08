"""Copies of one recording never straddle a fold, and stay two songs in a run's results."""

from __future__ import annotations

import shutil

import numpy as np

from progrock.audio import write_audio
from progrock.data.manifest import read_manifest
from progrock.training.config import TrainConfig
from progrock.training.fit import FitPlan, _song_folds
from progrock.workflow import train_run

from conftest import SR, music


def test_copies_of_a_recording_share_a_fold_and_the_classes_stay_balanced():
    labels = np.repeat([0, 1], [30, 15])
    groups = np.arange(45)
    groups[[3, 17, 29]] = 3                      # three copies of one nonprog recording
    groups[[31, 40]] = 31                        # two of a prog one
    for seed in range(10):
        fold = _song_folds(labels, 5, seed=seed, groups=groups)
        assert len(set(fold[[3, 17, 29]])) == 1 and len(set(fold[[31, 40]])) == 1
        for label in (0, 1):                     # each fold keeps about its share of each class
            counts = np.bincount(fold[labels == label], minlength=5)
            assert counts.max() - counts.min() <= 3, (seed, label, counts)


def test_without_groups_every_song_is_its_own_recording():
    labels = np.repeat([0, 1], [12, 8])
    a = _song_folds(labels, 4, seed=1)
    b = _song_folds(labels, 4, seed=1, groups=np.arange(20))
    np.testing.assert_array_equal(a, b)
    assert sorted(np.bincount(a[labels == 1])) == [2, 2, 2, 2]


def test_two_copies_in_the_training_data_stay_two_songs(tmp_path):
    data = tmp_path / "data"
    for i in range(7):
        write_audio(data / "prog" / f"p{i}.flac", music(12.0, seed=i, pitch_hz=220), SR)
        write_audio(data / "nonprog" / f"n{i}.flac", music(12.0, seed=20 + i, pitch_hz=660), SR)
    shutil.copy(data / "prog" / "p0.flac", data / "prog" / "p0 copy.flac")
    plan = FitPlan(recipe="seed", train_config=TrainConfig(epochs=2, batch_size=16, seed=0), models=("cnn", "logreg"))
    outcome = train_run(data, tmp_path / "run", cache=tmp_path / "cache", plan=plan)
    names = [r.path for rows in outcome.evaluation.songs.values() for r in rows["cnn"]]
    assert len(names) == len(set(names)) == 15
    assert any(n.endswith("p0.flac") for n in names) and any(n.endswith("p0 copy.flac") for n in names)


def test_fewer_songs_of_a_class_than_folds_train_with_fewer_folds(tmp_path):
    """3 prog songs to train on and 5 folds asked: a fold would hold every prog song out of its member."""
    data = tmp_path / "data"
    for i in range(5):
        write_audio(data / "prog" / f"p{i}.flac", music(12.0, seed=i, pitch_hz=220), SR)
    for i in range(12):
        write_audio(data / "nonprog" / f"n{i}.flac", music(12.0, seed=20 + i, pitch_hz=660), SR)
    plan = FitPlan(recipe="default", folds=5, train_config=TrainConfig(epochs=2, batch_size=16, seed=0),
                   models=("cnn", "logreg"))
    outcome = train_run(data, tmp_path / "run", cache=tmp_path / "cache", plan=plan)
    members = outcome.run.description["cnn_members"]
    n_prog = sum(s.label == "prog" and s.split == "train"
                 for s in read_manifest(tmp_path / "run" / "manifest.csv").songs)
    assert n_prog < 5 and len(members) == (n_prog if n_prog >= 2 else 1)
