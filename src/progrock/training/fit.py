"""Train every model of a run once, on the run's training songs, and choose each threshold on validation.

:func:`fit_run` is what ``progrock train`` does after the features are there:

1. **the CNN** by a *recipe* (:data:`RECIPES`): the course project's exact
   recipe (``"seed"``: one network, snippets fixed at the per-class hop, 300
   epochs, the best epoch by validation song balanced accuracy), or the
   default (``"default"``: the 43 features and, below them, the song's
   structure evidence along it and its length (:data:`CNN_INPUT`); snippets drawn afresh
   every epoch, early stopping on the validation loss, and an ensemble of
   :data:`FOLDS` networks, each trained without one fold of the training
   songs, whose snippet probabilities are averaged; the song's verdict from
   their mean, where the seed votes: :data:`CNN_RULES`). The held-out folds
   give every training song an *out-of-fold* CNN probability: one from a
   network that never saw it;
2. **the classical baselines** (logistic regression and extra trees on song statistics);
3. **the structure model** (logistic regression on the song's structure
   descriptors and the CNN's mean snippet probability, the training songs'
   out of fold: never from a network that learnt the song, so it does not
   learn the CNN's over-confidence);
4. **the pretrained ears**, when the musicnn features are there: the tagger's
   "Progressive rock" tag (zero-shot) and a logistic head on its patch embeddings;
5. **the familiarity check** on the training songs.

Every threshold is chosen on the validation songs (the song balanced
accuracy's maximiser nearest 0.5), never on a test song, except the logistic
models' (:data:`LOGISTIC_THRESHOLD`); the default model is
the one with the best song balanced accuracy on the validation songs pooled
with the training songs' out-of-fold verdicts (validation alone where a model
has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from progrock.constants import CLASSES
from progrock.data.dataset import SongFeatures
from progrock.data.snippets import SnippetConfig, SnippetSet, SongFrames, usable_frames
from progrock.errors import DatasetError, SnippetError
from progrock.evaluation.metrics import balanced_accuracy_at, choose_threshold
from progrock.evaluation.verdict import song_scores
from progrock.features.sets import FeatureConfig
from progrock.model import classical
from progrock.model.familiarity import fit_familiarity
from progrock.model.inputs import cnn_rows
from progrock.model.network import ModelConfig
from progrock.model.run import ModelEntry, Run, Songs
from progrock.training.config import TrainConfig

FOLDS = 5
"""Members of the default recipe's ensemble: folds of the training songs."""

STRUCTURE_INPUT = "structure"
"""What the structure model reads (:data:`progrock.model.inputs.INPUTS`): the descriptors and the
CNN's mean snippet probability."""

RECIPES = {
    "seed": dict(placement="fixed", best_by="song_balanced_accuracy", early_stopping_patience=None),
    "default": dict(placement="random", best_by="loss", early_stopping_patience=30),
}
"""How the CNN is trained: the course project's recipe, and the default."""

CNN_RULES = {"seed": "vote", "default": "mean"}
"""How each recipe's ``cnn`` turns snippet probabilities into the song's verdict
(:data:`progrock.evaluation.verdict.RULES`): the seed's vote, or the mean. Reading the 43 features
alone, the strongest passages (rule ``"top"``) ranked songs better than the mean; with the
structure rows every snippet carries the song's own evidence, and the mean, which hears all of
them, did better on corpora of unseen seeds (BENCHMARKS.md §12). Where the recipe's rule is the
mean, the run has no separate ``cnn_mean``: it would be the same model."""

CNN_INPUT = {"seed": "seed43", "default": "seed43+structure+duration"}
"""What each recipe's CNN reads per frame (:data:`progrock.model.inputs.CNN_INPUTS`): the course's 43
features, or those and what a 10-s snippet cannot hear by itself: the song's structure evidence
along it (odd metre, tempo against the song's own, key away from home, how well the phrase returns:
:data:`progrock.features.structure.STRUCTURE_ROWS`) and how long the song is
(:data:`~progrock.features.structure.SONG_ROWS`; BENCHMARKS.md §12)."""

JUDGING = {"seed": {}, "default": {"predict_start": 0.0, "predict_hop": 2.5}}
"""Where each recipe's run places the snippets of a song it judges (validation songs, test songs,
predictions; :class:`progrock.data.snippets.SnippetConfig` ``predict_start`` and ``predict_hop``,
s): the seed's one every 5 s from 10 s in, or one every 2.5 s from the song's start: the whole song,
the intro included, and twice the snippets for a steadier song score, whose threshold then carries
better to other songs (measured with the strongest passages' rule: BENCHMARKS.md §12)."""

LOGISTIC_CS = (0.01, 0.03, 0.1, 0.3, 1.0)
"""The logistic models' candidate inverse regularisations (``C``)."""

LOGISTIC_THRESHOLD: float = 0.5
"""The threshold of the logistic models (``logreg`` and ``structure``). They are fitted with
balanced class weights, so 0.5 is where they weigh a missed prog song and a false alarm alike: the
balanced accuracy's decision. A threshold chosen on the 120 validation and out-of-fold songs of a
demo-sized run moved between 0.26 and 0.74 from one seed's corpus to the next, with a song or two,
while the model's ranking barely changed."""

MODELS = ("cnn", "cnn_mean", "logreg", "extratrees", "structure", "musicnn", "musicnn_head")
"""Every model a run can hold, in the order they are reported."""

CNN_TITLES = {"vote": "1D-CNN, snippet vote", "top": "1D-CNN, strongest passages",
              "mean": "1D-CNN, mean probability"}
"""The CNN's title by its rule."""


CNN_INPUT_TITLES = {"seed43": "", "seed43+structure": ", hearing the song's structure",
                    "seed43+structure+duration": ", hearing the song's structure and length"}
"""What the CNN's title adds for what it reads (:data:`progrock.model.inputs.CNN_INPUTS`)."""


def cnn_title(rule: str, cnn_input: str) -> str:
    """The CNN's title by its rule and what it reads (:data:`CNN_INPUT`)."""
    return CNN_TITLES[rule] + CNN_INPUT_TITLES[cnn_input]


TITLES = {
    "cnn": cnn_title(CNN_RULES["default"], CNN_INPUT["default"]), "cnn_mean": CNN_TITLES["mean"],
    "logreg": "Logistic regression (song statistics)", "extratrees": "ExtraTrees (song statistics)",
    "structure": "Song structure + CNN mean probability (logistic)",
    "musicnn": "musicnn tagger, zero-shot (Progressive rock tag)",
    "musicnn_head": "musicnn embeddings + logistic head (transfer)",
}
PREFERENCE = ("structure", "cnn", "musicnn_head", "extratrees", "logreg", "cnn_mean", "musicnn")
"""Ties of validation balanced accuracy go to the model earlier here."""


@dataclass
class FitPlan:
    """What to train.

    Attributes
    ----------
    recipe : {"default", "seed"}
    models : tuple of str
        A subset of :data:`MODELS` (the CNN is trained whenever a model needs it).
    train_config : TrainConfig
        The CNN's settings; the recipe sets placement, early stopping and what picks the best epoch.
    model_config : ModelConfig
    snippet_config : SnippetConfig
    folds : int
        Members of the default recipe's ensemble.
    patience : int, optional
        Early stopping's patience instead of the recipe's.
    thresholds : {"pooled", "validation"}
        Where each threshold is chosen: on the validation songs and the
        training songs' out-of-fold scores together (``"pooled"``: four times
        the songs, so a threshold moves less with a song or two), or on the
        validation songs alone. Without out-of-fold scores (the seed recipe's
        one network) the CNN's threshold is chosen on validation either way;
        the logistic models keep :data:`LOGISTIC_THRESHOLD` under both.
    logistic_C : float, optional
        The logistic models' inverse regularisation; ``None`` chooses it by
        cross-validation on the training songs (:data:`LOGISTIC_CS`), by the
        out-of-fold log-loss.
    """

    recipe: str = "default"
    models: tuple[str, ...] = MODELS
    train_config: TrainConfig = field(default_factory=TrainConfig)
    model_config: ModelConfig = field(default_factory=ModelConfig)
    snippet_config: SnippetConfig = field(default_factory=SnippetConfig)
    folds: int = FOLDS
    patience: int | None = None
    thresholds: str = "pooled"
    logistic_C: float | None = classical.LOGISTIC_C

    def cnn_config(self) -> TrainConfig:
        """The CNN's training settings under the recipe (and ``patience`` if given)."""
        settings = dict(RECIPES[self.recipe])
        if self.patience is not None:
            settings["early_stopping_patience"] = self.patience
        return replace(self.train_config, **settings)

    def network_config(self) -> ModelConfig:
        """The CNN's network under the recipe: ``model_config`` taking the rows of the recipe's input
        (:data:`CNN_INPUT`)."""
        return replace(self.model_config, n_features=cnn_rows(FeatureConfig.named("seed43"), CNN_INPUT[self.recipe]))

    def run_snippets(self) -> SnippetConfig:
        """The plan's snippet placement with its recipe's placement of judged songs (:data:`JUDGING`)."""
        return replace(self.snippet_config, **JUDGING[self.recipe])


def needs(plan: FitPlan) -> list[FeatureConfig]:
    """The feature sets a plan's models read: seed43 always, musicnn for the musicnn models (when
    progrock has the tagger)."""
    from progrock.features.sets import FEATURE_SETS

    sets = ["seed43"] + (["musicnn"] if "musicnn" in FEATURE_SETS and any(
        m.startswith("musicnn") for m in plan.models) else [])
    return [FeatureConfig.named(s) for s in sets]


def _songs(data: SongFeatures, split: str, config: SnippetConfig) -> tuple[Songs, np.ndarray]:
    """The songs of one split as a :class:`Songs` batch, and their labels (0/1).

    A song too short for a snippet is left out, as :meth:`Run.judge` leaves it
    out: every model learns from the songs every model can judge.
    """
    idx = [i for i, s in enumerate(data.songs) if s.split == split and s.label in CLASSES
           and _gives_snippets(s.path, data.features["seed43"][i], config)]
    songs = Songs([data.songs[i].path for i in idx], {k: [v[i] for i in idx] for k, v in data.features.items()},
                  [data.songs[i].duration for i in idx], [data.songs[i].label for i in idx])
    return songs, np.array([CLASSES.index(data.songs[i].label) for i in idx], dtype=np.int64)


def _gives_snippets(name: str, x: np.ndarray, config: SnippetConfig) -> bool:
    try:
        usable_frames(x, length=config.length, min_frames=config.min_frames, name=name, frame_rate=config.frame_rate)
    except SnippetError:
        return False
    return True


def _threshold(y: np.ndarray, scores: np.ndarray) -> float:
    return float(np.clip(choose_threshold(y, scores), 1e-6, 1 - 1e-6))


def fit_run(data: SongFeatures, run_dir: Path, plan: FitPlan, *, log: Callable[[str], None] = print,
            progress: Callable[[int, dict], None] | None = None,
            member: Callable[[int, int], None] | None = None, resume: bool = False,
            description: dict | None = None) -> Run:
    """Train every model of ``plan`` on ``data``'s training songs; thresholds on its validation songs.

    Parameters
    ----------
    data : SongFeatures
        The run's songs with their features (``seed43``, and ``musicnn`` for the musicnn models).
    run_dir : Path
        The run folder: the CNN's members train in ``run_dir/training/cnn-<k>``.
    plan : FitPlan
    progress, member : callable, optional
        ``progress(epoch, record)`` after every epoch of a CNN member, ``member(k, n)`` as the
        k-th of n members starts.
    description : dict, optional
        Kept in ``model.json`` (what the run was trained on...).

    Returns
    -------
    Run
        Not yet saved (:func:`progrock.model.run.save_run`).
    """
    plan = replace(plan, snippet_config=plan.run_snippets())
    train, y_train = _songs(data, "train", plan.snippet_config)
    val, y_val = _songs(data, "validation", plan.snippet_config)
    for name, y in (("train", y_train), ("validation", y_val)):
        if len(np.unique(y)) < 2:
            raise DatasetError(f"the {name} split needs prog and nonprog songs")
    fewest = int(np.bincount(y_train, minlength=2).min())
    if plan.recipe == "default" and plan.folds > fewest:     # every fold must leave both classes to train on
        plan = replace(plan, folds=fewest if fewest >= 2 else 1)
        log(f"the smaller class has {fewest} training song(s): {plan.folds} fold(s) for the CNN's members")
    models = [m for m in MODELS if m in plan.models and (not m.startswith("musicnn") or "musicnn" in data.features)]
    if CNN_RULES[plan.recipe] == "mean" and "cnn_mean" in models:     # the same model as the recipe's cnn
        models = [m for m in MODELS if m in models + ["cnn"] and m != "cnn_mean"]
        if tuple(plan.models) != MODELS:                              # asked for by name
            log(f"the {plan.recipe} recipe's cnn judges by the mean snippet probability: cnn_mean is cnn")
    groups = _groups(data, train.names)
    configs = {"seed43": FeatureConfig.named("seed43")} | (
        {"musicnn": FeatureConfig.named("musicnn")} if "musicnn" in data.features else {})
    run = Run({}, "cnn", configs, plan.snippet_config, description=dict(description or {}),
              cnn_input=CNN_INPUT[plan.recipe])
    plan = replace(plan, model_config=plan.network_config())
    oof = None
    if any(m in models for m in ("cnn", "cnn_mean", "structure")):
        oof = _fit_cnn(run, data, plan, run_dir, log=log, progress=progress, member=member, resume=resume)
        _cnn_entries(run, val, y_val, models, plan, oof, train, y_train)
    inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("logreg", "extratrees"):
        if name in models:
            inputs[name] = _fit_classical(run, name, "song_statistics", train, y_train, val, y_val, plan,
                                          groups=groups)
    if "structure" in models:
        inputs["structure"] = _fit_structure(run, train, y_train, val, y_val, plan, oof, groups=groups)
    if "musicnn" in models or "musicnn_head" in models:
        from progrock.model.pretrained import fit_musicnn_models

        fit_musicnn_models(run, [m for m in models if m.startswith("musicnn")], train, y_train, val, y_val,
                           seed=plan.train_config.seed)
    from progrock.features.summary import song_statistics
    from progrock.model.familiarity import MIN_SONGS

    if len(train.names) >= MIN_SONGS:
        run.familiarity = fit_familiarity(np.stack([song_statistics(x) for x in train.features["seed43"]]),
                                          seed=plan.train_config.seed)
    else:                                   # said to the user by workflow.split_warnings
        log(f"no familiarity check: {len(train.names)} training songs (it needs {MIN_SONGS})")
    train_oof = (_training_out_of_fold(run, train, y_train, oof, inputs, plan, groups=groups)
                 if oof else {})
    run.default_model, run.description["validation"] = _choose_default(run, val, y_val, train_oof, y_train)
    return run


def _fit_cnn(run: Run, data: SongFeatures, plan: FitPlan, run_dir: Path, *, log, progress, member, resume
             ) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Train the CNN's members; the training songs' out-of-fold snippet probabilities (default recipe)."""
    from progrock.data.dataset import snippet_sets
    from progrock.training.loop import train_model

    c = plan.snippet_config
    sets = snippet_sets(data, c, sets=["train", "validation"], view=run.frames_view)
    train, validation = sets["train"], sets["validation"]
    tc = plan.cnn_config()
    folds = plan.folds if plan.recipe == "default" else 1
    fold_of = _song_folds(train.frames.labels, folds, seed=tc.seed, groups=_groups(data, train.frames.songs))
    oof: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fc = FeatureConfig.named("seed43")
    for k in range(folds):
        keep = fold_of != k if folds > 1 else np.ones(len(train.songs), bool)
        songs = _subset(train, keep)
        log(f"CNN member {k + 1} of {folds}: {len(songs.songs)} training songs")
        if member is not None:
            member(k + 1, folds)
        result = train_model(songs, validation, model_config=plan.model_config,
                             train_config=replace(tc, seed=tc.seed + k), out_dir=run_dir / "training" / f"cnn-{k + 1}",
                             log_dir=run_dir / "tensorboard" / f"cnn-{k + 1}",
                             feature_config=fc, snippet_config=c, log=log, progress=progress, resume=resume,
                             cnn_input=run.cnn_input)
        run.networks.append(result.model.eval())
        run.description.setdefault("cnn_members", []).append(
            {"member": k + 1, "songs": len(songs.songs), "best_epoch": result.best_epoch,
             "epochs_run": len(result.history), "stopped_early": result.stopped_early})
        if folds > 1:
            held = SnippetSet.place(_frames_subset(train.frames, ~keep), c, by_class=False)
            probs = Run({}, "", {}, c, [result.model], cnn_input=run.cnn_input).snippet_probabilities(held)
            for i, name in enumerate(held.songs):
                oof[name] = (held.start[held.song == i] / c.frame_rate, probs[held.song == i])
    return oof or None


def _groups(data: SongFeatures, names: list[str]) -> np.ndarray:
    """The copy group of each named song [n] (copies of one recording share one); a song without a
    known group (a manifest that was not scanned) is a group of its own."""
    group_of = {s.path: s.group for s in data.songs}
    groups = np.array([group_of.get(n, -1) for n in names], dtype=np.int64)
    alone = groups < 0
    groups[alone] = -1 - np.arange(int(alone.sum()))
    return groups


def _song_folds(labels: np.ndarray, folds: int, *, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """A fold per song, stratified by label; copies of one recording (one ``groups`` value) in one fold,
    so an out-of-fold verdict never comes from a fit that heard a copy of the song."""
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    fold = np.zeros(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = rng.permutation(np.unique(groups[members]))
        rank = {g: k % max(folds, 1) for k, g in enumerate(order)}
        fold[members] = [rank[g] for g in groups[members]]
    for g in np.unique(groups):             # a recording labelled both ways: its first song's fold
        fold[groups == g] = fold[groups == g][0]
    return fold


def _frames_subset(frames: SongFrames, keep: np.ndarray) -> SongFrames:
    idx = np.flatnonzero(keep)
    mats = [frames.matrix(i) for i in idx]
    lengths = [m.shape[1] for m in mats]
    return SongFrames(np.ascontiguousarray(np.concatenate(mats, axis=1)) if mats else frames.x[:, :0],
                      np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                      [frames.songs[i] for i in idx], frames.labels[idx])


def _subset(s: SnippetSet, keep: np.ndarray) -> SnippetSet:
    """The snippets of the songs where ``keep`` is true, over those songs' frames only."""
    idx = np.flatnonzero(keep)
    new_index = np.full(len(keep), -1, dtype=np.int64)
    new_index[idx] = np.arange(len(idx))
    rows = keep[s.song]
    return SnippetSet(_frames_subset(s.frames, keep), new_index[s.song[rows]], s.start[rows], s.length)


def _cnn_entries(run: Run, val: Songs, y_val: np.ndarray, models: list[str], plan: FitPlan,
                 oof: dict | None, train: Songs, y_train: np.ndarray) -> None:
    """The CNN's two verdicts with their thresholds: the recipe's rule (:data:`CNN_RULES`), and the mean.

    The thresholds are chosen on the validation songs' ensemble scores and,
    with ``plan.thresholds == "pooled"`` and out-of-fold probabilities, the
    training songs' scores from the members that never saw them.
    """
    probs = [p for _starts, p in run._cnn_snippets(val)]
    y = y_val
    held: list[np.ndarray] = []
    rule = "chosen on the validation songs: the balanced accuracy's maximiser nearest 0.5"
    if oof is not None and plan.thresholds == "pooled" and all(n in oof for n in train.names):
        held = [oof[n][1] for n in train.names]
        y = np.concatenate([y, y_train])
        rule = ("chosen on the validation songs and the training songs' out-of-fold scores: the balanced "
                "accuracy's maximiser nearest 0.5")
    for name, song_rule in (("cnn", CNN_RULES[plan.recipe]), ("cnn_mean", "mean")):
        if name not in models:
            continue
        score = np.array([_one_song_score(p, song_rule) for p in probs + held])
        run.entries[name] = ModelEntry("cnn", cnn_title(song_rule, run.cnn_input), song_rule, _threshold(y, score),
                                       threshold_rule=rule)


def _one_song_score(probs: np.ndarray, rule: str) -> float:
    """:func:`song_scores` of one song's snippet probabilities."""
    return float(song_scores(probs, np.zeros(len(probs), np.int64), 1, rule=rule)[0])


def _fit_classical(run: Run, name: str, input_name: str, train: Songs, y_train, val: Songs, y_val,
                   plan: FitPlan, cnn: dict | None = None, val_cnn: dict | None = None, *,
                   groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit a classical model on the training songs' input (every entry of it, recorded in the model's
    entry as its ``columns``), its threshold on validation (and the training songs' out-of-fold
    probabilities when pooled), or :data:`LOGISTIC_THRESHOLD` for a logistic one; the training input
    and those probabilities.

    The out-of-fold probabilities come from refits on :func:`_song_folds` of
    the training songs, each without the fold it predicts.
    """
    from progrock.model.inputs import INPUTS, input_names

    make = INPUTS[input_name]
    fr = run.snippet_config.frame_rate

    def X(songs: Songs, profiles: dict | None) -> np.ndarray:
        return np.stack([make(x, frame_rate=fr, duration=d,
                              snippet_probs=profiles[n][1] if profiles else None,
                              snippet_starts=profiles[n][0] if profiles else None)
                         for n, x, d in zip(songs.names, songs.features["seed43"], songs.durations)])

    seed = plan.train_config.seed
    kind = "forest" if name == "extratrees" else "logistic"
    X_train = X(train, cnn)
    folds = _song_folds(y_train, plan.folds, seed=seed, groups=groups)
    C = plan.logistic_C
    if kind == "logistic" and C is None:
        C = classical.choose_C(X_train, y_train, folds, Cs=LOGISTIC_CS, seed=seed)
    model = _fit_kind(kind, X_train, y_train, seed=seed, C=C)
    run.classical[name] = model
    held = np.empty(len(y_train))
    for k in range(plan.folds):
        out = folds == k
        held[out] = _fit_kind(kind, X_train[~out], y_train[~out], seed=seed, C=C).predict(X_train[out])
    if kind == "logistic":                 # no validation input needed: the threshold is fixed
        threshold, rule = LOGISTIC_THRESHOLD, ("0.5, where a logistic fitted with balanced class weights "
                                              "weighs both classes alike")
    else:
        if cnn is not None and val_cnn is None:
            raise ValueError(f"{name}: a model that reads the CNN needs the validation songs' CNN probabilities")
        p_val = model.predict(X(val, val_cnn))
        if plan.thresholds == "pooled":
            threshold = _threshold(np.concatenate([y_val, y_train]), np.concatenate([p_val, held]))
            rule = "chosen on the validation songs and the training songs' out-of-fold probabilities"
        else:
            threshold, rule = _threshold(y_val, p_val), "chosen on the validation songs"
    run.entries[name] = ModelEntry(model.kind, TITLES[name], "mean", threshold, input=input_name,
                                   threshold_rule=rule + ("" if C is None else f"; C = {C:g}"),
                                   columns=tuple(input_names(input_name)))
    return X_train, held


def _fit_kind(kind: str, X: np.ndarray, y: np.ndarray, *, seed: int, C: float | None = None,
              sample_weight=None) -> classical.ClassicalModel:
    if kind == "forest":
        return classical.fit_forest(X, y, seed=seed)
    return classical.fit_logistic(X, y, seed=seed, C=classical.LOGISTIC_C if C is None else C,
                                  sample_weight=sample_weight)


def _fit_structure(run: Run, train: Songs, y_train, val: Songs, y_val, plan: FitPlan, oof: dict | None, *,
                   groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The structure model: the training songs' CNN probabilities out of fold; without them (the
    seed recipe) the CNN's part is left out rather than taken from a network that learnt the songs.
    A logistic model's threshold is fixed (:data:`LOGISTIC_THRESHOLD`), so the validation songs' CNN
    probabilities are never needed here."""
    if oof is None or not all(n in oof for n in train.names):
        zero = {k: (np.zeros(0), np.zeros(0)) for k in set(train.names) | set(val.names)}
        out = _fit_classical(run, "structure", STRUCTURE_INPUT, train, y_train, val, y_val, plan, zero, zero,
                             groups=groups)
        entry = run.entries["structure"]
        entry.title = "Song structure (logistic; descriptors only, no out-of-fold CNN)"
        run.classical["structure"].arrays["coef"][np.array([col.startswith("cnn_") for col in entry.columns])] = 0.0
        return out
    return _fit_classical(run, "structure", STRUCTURE_INPUT, train, y_train, val, y_val, plan, oof, groups=groups)


def _training_out_of_fold(run: Run, train: Songs, y_train: np.ndarray, oof: dict,
                          inputs: dict[str, tuple[np.ndarray, np.ndarray]], plan: FitPlan, *,
                          groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each model's verdicts (0/1) on the training songs from fits that never saw the song.

    The CNN's come from its fold members; a classical model's from its refits
    on the same folds (:func:`_fit_classical`); the zero-shot tag needs no fit. Each at the model's stored
    threshold. With the validation songs they choose the default model on more
    songs than validation alone holds.
    """
    folds = _song_folds(y_train, plan.folds, seed=plan.train_config.seed, groups=groups)
    out: dict[str, np.ndarray] = {}
    for name, entry in run.entries.items():
        if entry.kind == "cnn":
            if not all(n in oof for n in train.names):        # a song too short for a snippet: no pooled choice
                continue
            probs = [oof[n][1] for n in train.names]
            out[name] = (np.array([_one_song_score(p, entry.rule) for p in probs]) >= entry.threshold
                         ).astype(np.int64)
        elif name in inputs:
            out[name] = (inputs[name][1] >= entry.threshold).astype(np.int64)
        elif entry.kind == "musicnn":
            from progrock.features.musicnn.features import prog_tag

            out[name] = (np.array([prog_tag(x).mean() for x in train.features["musicnn"]]) >= entry.threshold
                         ).astype(np.int64)
        elif entry.kind == "patches":
            from progrock.model.pretrained import head_out_of_fold

            out[name] = head_out_of_fold(train.features["musicnn"], y_train, folds, entry.threshold,
                                         seed=plan.train_config.seed)
    return out


def _choose_default(run: Run, val: Songs, y_val: np.ndarray, train_oof: dict[str, np.ndarray],
                    y_train: np.ndarray) -> tuple[str, dict]:
    """The model with the best song balanced accuracy on the validation songs and, where there are
    out-of-fold verdicts, the training songs too (ties: :data:`PREFERENCE`); every model's validation
    balanced accuracy and mean probability per class (the reference against which a shift of its
    probabilities on new music is measured)."""
    judged = run.judge(val).results
    scores, pooled, means = {}, {}, {}
    for name, rows in judged.items():
        truth = np.array([CLASSES.index(r.truth) for r in rows])
        pred = np.array([r.is_prog for r in rows], dtype=float)
        prob = np.array([r.probability for r in rows])
        scores[name] = float(balanced_accuracy_at(truth, pred, [0.5])[0])
        means[name] = {c: float(prob[truth == i].mean()) for i, c in enumerate(CLASSES)}
        if name in train_oof:
            y = np.concatenate([y_train, truth])
            pooled[name] = float(balanced_accuracy_at(y, np.concatenate([train_oof[name], pred]), [0.5])[0])
    chooser = pooled if len(pooled) == len(scores) else scores
    best = max(chooser.values())
    default = next(m for m in PREFERENCE if chooser.get(m) == best)
    return default, {"split": "validation", "n_songs": len(y_val), "balanced_accuracy": scores,
                     "class_means": means,
                     "chosen_by": ("balanced accuracy on the validation songs and the training songs' out-of-fold "
                                   "verdicts" if chooser is pooled else "balanced accuracy on the validation songs"),
                     "pooled_balanced_accuracy": pooled, "n_pooled_songs": len(y_val) + len(y_train)}
