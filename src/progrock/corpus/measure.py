"""How separable the demo corpus is: single cues and a small audio baseline.

Both functions read the written files (decoded like every other song), so they
measure what the classifier will see, codecs included.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from progrock.constants import HOP_LENGTH, N_FFT, SR
from progrock.errors import ProgrockError

PLAN_CUES: tuple[str, ...] = ("duration", "mean_tempo", "tempo_changes", "keyboards",
                              "n_sections")
"""Cues read from each song's record (ground truth, never seen by the classifier)."""

AUDIO_CUES: tuple[str, ...] = ("rms_loudness", "spectral_centroid_mean")
"""Cues measured on the decoded audio."""


def _labels(songs: list[dict]) -> np.ndarray:
    y = np.array([s["label"] == "prog" for s in songs], dtype=int)
    if y.min() == y.max():
        raise ProgrockError("separability needs songs of both classes")
    return y


def _path(song: dict, root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root) / song["file"]
    if "path" in song:
        return Path(song["path"])
    raise ProgrockError(f"song {song.get('name')}: no 'path'; pass root= (the corpus folder)")


def _plan_cue(song: dict, cue: str) -> float:
    if cue == "keyboards":
        return float(len(song["keyboards"]) > 0)
    return float(song[cue])


def audio_cues(y: np.ndarray, *, sr: int = SR) -> dict[str, float]:
    """RMS (linear) and mean spectral centroid (Hz) of one song.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
    """
    import librosa

    cent = librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH)
    return {"rms_loudness": float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))),
            "spectral_centroid_mean": float(cent.mean())}


def cue_separability(songs: list[dict], *, root: str | os.PathLike | None = None) -> dict[str, float]:
    """Folded ROC-AUC of each single cue against the folder label.

    Parameters
    ----------
    songs : list of dict
        As returned by :func:`generate_corpus` (or ``corpus.json``'s ``songs``
        with ``root`` the corpus folder).
    root : str or os.PathLike, optional
        Corpus folder to resolve each song's ``file`` in.

    Returns
    -------
    dict of str to float
        Cue name to ``max(auc, 1 - auc)`` in [0.5, 1]: 0.5 tells nothing, 1
        separates the classes alone. Keys: :data:`PLAN_CUES` then :data:`AUDIO_CUES`.
    """
    from sklearn.metrics import roc_auc_score

    from progrock.audio import decode

    y = _labels(songs)
    values = {cue: [_plan_cue(s, cue) for s in songs] for cue in PLAN_CUES}
    measured = [audio_cues(decode(_path(s, root), sr=SR).y, sr=SR) for s in songs]
    values.update({cue: [m[cue] for m in measured] for cue in AUDIO_CUES})
    out = {}
    for cue, x in values.items():
        auc = float(roc_auc_score(y, np.asarray(x)))
        out[cue] = round(max(auc, 1.0 - auc), 4)
    return out


def song_features(y: np.ndarray, *, sr: int = SR) -> np.ndarray:
    """Mean and standard deviation of 20 MFCCs and 12 chroma bins.

    Returns
    -------
    np.ndarray [shape=(64,)]
    """
    import librosa

    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=N_FFT, hop_length=HOP_LENGTH)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH)
    f = np.vstack([mfcc, chroma])
    return np.concatenate([f.mean(axis=1), f.std(axis=1)])


def audio_baseline(songs: list[dict], *, root: str | os.PathLike | None = None,
                   n_splits: int = 5, seed: int = 0) -> float:
    """Cross-validated balanced accuracy of a song-level audio baseline.

    Mean and std of MFCCs and chroma (:func:`song_features`) into an
    ``ExtraTreesClassifier``, stratified ``n_splits``-fold CV on folder labels:
    a sanity check that the classes are learnable from audio.

    Returns
    -------
    float
        Mean balanced accuracy over the folds (0.5 is chance).
    """
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from progrock.audio import decode

    y = _labels(songs)
    X = np.stack([song_features(decode(_path(s, root), sr=SR).y, sr=SR) for s in songs])
    clf = ExtraTreesClassifier(n_estimators=400, random_state=seed, n_jobs=1)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, X, y, cv=cv, scoring="balanced_accuracy")))
