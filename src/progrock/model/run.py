"""A run's models: every model a run trained, saved once, loaded and used without refitting.

``RUN/model.json`` (format ``progrock-model``, version 2) describes them and
``RUN/model.safetensors`` holds all their arrays: loading reads JSON and
safetensors only, never code, and refuses a file whose hash differs from the
description's. Each model is one :class:`ModelEntry`:

========== ============================================================= ================
kind       what it is                                                    reads
========== ============================================================= ================
cnn        the seed's 1D-CNN (one network or an ensemble whose snippet    seed43 frames
           probabilities are averaged); rule ``top`` or ``vote``
           (cnn, by recipe) or ``mean`` (cnn_mean)
logistic,  a classical model on a song-level input                        seed43 (+ cnn)
forest     (:mod:`progrock.model.inputs`)
musicnn    the pretrained tagger's "Progressive rock" tag per 3-s patch   musicnn
patches    a logistic model on the tagger's embedding of each 3-s patch   musicnn
========== ============================================================= ================

A run made before version 2 (one CNN in ``model.json`` version 1) loads as a
run with the models ``cnn`` and ``cnn_mean``.

:meth:`Run.judge` gives every model's :class:`~progrock.evaluation.verdict.SongResult`
for a batch of songs, with the familiarity check (:mod:`.familiarity`) and,
when asked, the tagger's tags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import progrock
from progrock.atomic import json_text, write_temporary
from progrock.constants import CLASSES
from progrock.data.snippets import SnippetConfig, SnippetSet, SongFrames, usable_frames
from progrock.errors import ConfigError, ModelError, SnippetError
from progrock.evaluation.verdict import RULES, SongResult, song_verdicts, with_evidence
from progrock.features.sets import FeatureConfig
from progrock.model.classical import ClassicalModel
from progrock.model.familiarity import Familiarity
from progrock.model.network import ModelConfig, SeedCNN

FORMAT_NAME = "progrock-model"
FORMAT_VERSION = 2
KINDS = ("cnn", "logistic", "forest", "musicnn", "patches")


@dataclass
class ModelEntry:
    """One model of a run, as ``model.json`` lists it.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    title : str
        For people, e.g. ``"1D-CNN, snippet vote"``.
    rule : {"vote", "mean", "top"}
        How its snippet probabilities become a verdict (:mod:`progrock.evaluation.verdict`;
        song-level models: ``"mean"``, the song's probability against the threshold).
    threshold : float
    input : str
        A classical model's input (a key of :data:`progrock.model.inputs.INPUTS`).
    threshold_rule : str
        How the threshold was chosen, for people.
    columns : tuple of str
        The entries of ``input`` a classical model reads, in order
        (:func:`progrock.model.inputs.columns_of`); empty in runs saved before
        models recorded them.
    """

    kind: str
    title: str
    rule: str
    threshold: float
    input: str = ""
    threshold_rule: str = ""
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.rule not in RULES:
            raise ModelError(f"unknown model kind {self.kind!r} or rule {self.rule!r}")
        if not 0.0 < float(self.threshold) < 1.0:
            raise ModelError(f"threshold {self.threshold} is not in (0, 1)")
        self.columns = tuple(str(c) for c in self.columns)

    @property
    def feature_sets(self) -> tuple[str, ...]:
        """The feature sets the model reads."""
        return ("musicnn",) if self.kind in ("musicnn", "patches") else ("seed43",)

    @property
    def needs_cnn(self) -> bool:
        return self.kind == "cnn" or self.input == "structure"


@dataclass
class Songs:
    """A batch of songs to judge: their features and what is known of them.

    Attributes
    ----------
    names : list of str
    features : dict
        Per feature-set name, one matrix ``[n_features, n_frames]`` per song.
    durations : list of float
        Seconds.
    truths : list of str or None
        Known classes, when evaluating.
    """

    names: list[str]
    features: dict[str, list[np.ndarray]]
    durations: list[float]
    truths: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.truths:
            self.truths = [None] * len(self.names)


@dataclass
class Judgement:
    """What :meth:`Run.judge` gives: per model, one result per song judged; the songs it could not judge."""

    results: dict[str, list[SongResult]]
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Run:
    """Every model of a run, ready to judge songs.

    Attributes
    ----------
    entries : dict of ModelEntry
        By model name, in the order they are reported.
    default_model : str
        The model ``predict`` and the web page use unless told otherwise.
    feature_configs : dict of FeatureConfig
        By feature-set name: every set the run's models read.
    snippet_config : SnippetConfig
    networks : list of SeedCNN
        The CNN's members (their snippet probabilities are averaged).
    classical : dict of ClassicalModel
        By model name.
    familiarity : Familiarity or None
    description : dict
        ``model.json`` as read (training summaries, what the run was trained on...).
    path : Path or None
        ``model.json``'s path when loaded from disk.
    cnn_input : str
        What the CNN reads of a song (:data:`progrock.model.inputs.CNN_INPUTS`).
    """

    entries: dict[str, ModelEntry]
    default_model: str
    feature_configs: dict[str, FeatureConfig]
    snippet_config: SnippetConfig
    networks: list[SeedCNN] = field(default_factory=list)
    classical: dict[str, ClassicalModel] = field(default_factory=dict)
    familiarity: Familiarity | None = None
    description: dict = field(default_factory=dict)
    path: Path | None = None
    cnn_input: str = "seed43"

    def cnn_view(self, seed43: np.ndarray) -> np.ndarray:
        """What the CNN reads of one song, from its ``seed43`` matrix (:func:`~progrock.model.inputs.cnn_matrix`)."""
        from progrock.model.inputs import cnn_matrix

        return cnn_matrix(seed43, self.cnn_input, frame_rate=self.snippet_config.frame_rate)

    @property
    def frames_view(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """:meth:`cnn_view` for :meth:`SongFrames.from_songs`; ``None`` where the CNN reads ``seed43`` as it is."""
        return None if self.cnn_input == "seed43" else self.cnn_view

    # -- what the run needs -------------------------------------------------------------------

    def model_names(self, models: Sequence[str] | None = None) -> list[str]:
        """``models`` checked against the run's (default: all of them)."""
        names = list(self.entries) if models is None else list(models)
        unknown = [m for m in names if m not in self.entries]
        if unknown:
            raise ConfigError(f"this run has no model {', '.join(unknown)}; it has {', '.join(self.entries)}")
        return names

    def needs(self, models: Sequence[str] | None = None, *, tags: bool = False) -> list[FeatureConfig]:
        """The feature configurations the given models (and the familiarity check, and tags) read."""
        sets = {"seed43"}
        for m in self.model_names(models):
            sets.update(self.entries[m].feature_sets)
        if tags:
            sets.add("musicnn")
        return [self.feature_config(s) for s in sorted(sets)]

    def feature_config(self, name: str) -> FeatureConfig:
        return self.feature_configs.get(name) or FeatureConfig.named(name)

    @property
    def trained_on(self) -> dict:
        """What the run's models were trained on (``source``, ``synthetic``, ``songs`` per class)."""
        return self.description.get("trained_on") or {}

    @property
    def warning(self) -> str | None:
        """What a user must know before trusting a verdict: a run that has never heard real music."""
        if self.trained_on.get("synthetic"):
            return ("this run was trained on progrock's synthetic demo corpus: it has never heard real music, "
                    "so its verdicts on real recordings mean little (train on your own collection, or use the "
                    "pretrained tagger: RUN = musicnn)")
        return None

    # -- judging ------------------------------------------------------------------------------

    def judge(self, songs: Songs, models: Sequence[str] | None = None, *, tags: bool = False) -> Judgement:
        """Every given model's verdict on every song (default: all models).

        Songs that cannot give a snippet (too short, features not finite) are
        listed in ``skipped`` with the reason and judged by no model.
        """
        names = self.model_names(models)
        ok, skipped = self._usable(songs)
        if not ok:
            return Judgement({m: [] for m in names}, skipped)
        batch = Songs([songs.names[i] for i in ok], {k: [v[i] for i in ok] for k, v in songs.features.items()},
                      [songs.durations[i] for i in ok], [songs.truths[i] for i in ok])
        cnn = self._cnn_snippets(batch) if any(self.entries[m].needs_cnn for m in names) else None
        results = {m: self._judge_one(m, batch, cnn) for m in names}
        self._annotate(batch, results, tags=tags)
        return Judgement(results, skipped)

    def _usable(self, songs: Songs) -> tuple[list[int], list[tuple[str, str]]]:
        c = self.snippet_config
        ok, skipped = [], []
        for i, (name, x) in enumerate(zip(songs.names, songs.features["seed43"])):
            try:
                usable_frames(x, length=c.length, min_frames=c.min_frames, name=name, frame_rate=c.frame_rate)
                ok.append(i)
            except SnippetError as exc:
                skipped.append((name, exc.reason))
        return ok, skipped

    def snippet_probabilities(self, snippets: SnippetSet) -> np.ndarray:
        """The CNN's probability of prog for each snippet [n] (float64): the members' mean."""
        from progrock.model.backends import backend_for

        if not self.networks:
            raise ModelError("this run has no CNN")
        total = np.zeros(len(snippets))
        for net in self.networks:
            logits = backend_for(net).logits(net, snippets.frames.x, snippets.offsets)
            total += 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        return total / len(self.networks)

    def _cnn_snippets(self, songs: Songs) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per song, the CNN's snippet starts (frames) and probabilities."""
        c = self.snippet_config
        frames = SongFrames.from_songs(list(zip(songs.names, songs.features["seed43"], [None] * len(songs.names))), c,
                                       view=self.frames_view)
        snippets = SnippetSet.place(frames, c, by_class=False)
        probs = self.snippet_probabilities(snippets)
        return [(snippets.start[snippets.song == i], probs[snippets.song == i]) for i in range(len(songs.names))]

    def _judge_one(self, name: str, songs: Songs, cnn) -> list[SongResult]:
        entry = self.entries[name]
        if entry.kind == "cnn":
            c = self.snippet_config
            return [self._verdict(name, entry, songs, i, starts / c.frame_rate, p, c.length / c.frame_rate)
                    for i, (starts, p) in enumerate(cnn)]
        if entry.kind in ("musicnn", "patches"):
            return [self._patch_verdict(name, entry, songs, i) for i in range(len(songs.names))]
        return self._song_level(name, entry, songs, cnn)

    def _verdict(self, name: str, entry: ModelEntry, songs: Songs, i: int, starts_s: np.ndarray,
                 probs: np.ndarray, snippet_seconds: float) -> SongResult:
        r = song_verdicts(probs, np.zeros(len(probs), dtype=np.int64), 1, threshold=entry.threshold,
                          rule=entry.rule)[0]
        return with_evidence(r, path=songs.names[i], starts=starts_s, probs=probs, frame_rate=1.0,
                             duration=songs.durations[i], snippet_seconds=snippet_seconds, model=name,
                             truth=songs.truths[i])

    def _patch_verdict(self, name: str, entry: ModelEntry, songs: Songs, i: int) -> SongResult:
        from progrock.features.musicnn.features import PATCH_SECONDS, patch_embeddings, prog_tag

        x = songs.features["musicnn"][i]
        probs = prog_tag(x) if entry.kind == "musicnn" else self.classical[name].predict(patch_embeddings(x))
        return self._verdict(name, entry, songs, i, np.arange(len(probs)) * PATCH_SECONDS, probs, PATCH_SECONDS)

    def _song_level(self, name: str, entry: ModelEntry, songs: Songs, cnn) -> list[SongResult]:
        from progrock.model.inputs import INPUTS, columns_of, select_columns

        make = INPUTS[entry.input]
        columns = columns_of(entry.input, entry.columns)
        c = self.snippet_config
        rows = [make(x, frame_rate=c.frame_rate, duration=songs.durations[i],
                     snippet_probs=cnn[i][1] if cnn else None,
                     snippet_starts=cnn[i][0] / c.frame_rate if cnn else None)
                for i, x in enumerate(songs.features["seed43"])]
        X = select_columns(np.stack(rows), entry.input, columns) if rows else np.zeros((0, len(columns)))
        model = self.classical[name]
        probs = model.predict(X) if len(X) else np.zeros(0)
        results = []
        for i, p in enumerate(probs):
            r = SongResult(path=songs.names[i], verdict=CLASSES[int(p >= entry.threshold)], probability=round(float(p), 4),
                           vote_fraction=None, n_snippets=0,
                           duration=round(float(songs.durations[i]), 2), snippet_seconds=0.0,
                           threshold=entry.threshold, rule="mean", model=name, truth=songs.truths[i])
            if model.kind == "logistic":
                r.explanation = _explain(model.contributions(X[i:i + 1])[0], X[i], columns)
            if entry.input == "structure" and cnn:             # its evidence along the song: the CNN's snippets
                starts, snippet_probs = cnn[i]
                r.n_snippets, r.snippet_seconds = len(snippet_probs), round(c.length / c.frame_rate, 2)
                r.snippet_starts = [round(float(t) / c.frame_rate, 2) for t in starts]
                r.snippet_probs = [round(float(q), 4) for q in snippet_probs]
            results.append(r)
        return results

    def _annotate(self, songs: Songs, results: dict[str, list[SongResult]], *, tags: bool) -> None:
        """The familiarity check, and the tagger's song-mean tags when asked, on every result."""
        extra: list[dict] = [{} for _ in songs.names]
        if self.familiarity is not None and songs.names:
            from progrock.features.summary import song_statistics

            d = self.familiarity.distance(np.stack([song_statistics(x) for x in songs.features["seed43"]]))
            for e, di in zip(extra, d):
                e["unfamiliar"] = bool(di > self.familiarity.cutoff)
                e["familiarity"] = round(float(di / self.familiarity.cutoff), 3)
        if tags and "musicnn" in songs.features:
            from progrock.features.musicnn.features import song_tags

            for e, x in zip(extra, songs.features["musicnn"]):
                e["tags"] = song_tags(x)
        for rows in results.values():
            for r, e in zip(rows, extra):
                for k, v in e.items():
                    setattr(r, k, v)


def _explain(push: np.ndarray, values: np.ndarray, names: list[str], top: int = 5) -> list[dict]:
    """The ``top`` inputs with the largest push on the logit, strongest first."""
    order = np.argsort(-np.abs(push))[:top]
    return [{"input": names[j], "value": round(float(values[j]), 4), "push": round(float(push[j]), 4)}
            for j in order]


# ---------------------------------------------------------------------------------------------
# saving and loading


def save_run(out_dir: str | os.PathLike, run: Run) -> Path:
    """Write ``out_dir/model.json`` and ``out_dir/model.safetensors``.

    Both are written in full before either replaces the old pair, so a failed
    write (a full disk) leaves the previous run loadable. The two renames are
    not one step: a crash between them leaves weights that do not match the
    description, which :func:`load_run` refuses by their hash (train again,
    or with ``--resume``), never a mix it would load.

    Returns
    -------
    Path
        ``model.json``.
    """
    import hashlib

    from safetensors.torch import save

    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for k, net in enumerate(run.networks):
        tensors.update({f"cnn.{k}.{n}": t.detach().cpu().contiguous() for n, t in net.state_dict().items()})
    for name, model in run.classical.items():
        tensors.update({f"{name}.{k}": torch.from_numpy(np.ascontiguousarray(a)) for k, a in model.arrays.items()})
    if run.familiarity is not None:
        tensors.update({f"familiarity.{k}": torch.from_numpy(np.ascontiguousarray(a))
                        for k, a in run.familiarity.arrays().items()})
    weights = save(tensors, metadata={"format": FORMAT_NAME})
    meta = dict(run.description)
    meta.update({
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "progrock_version": progrock.__version__,
        "class_names": list(CLASSES),
        "models": {n: {**e.__dict__} for n, e in run.entries.items()},
        "classical": {n: m.kind for n, m in run.classical.items()},
        "default_model": run.default_model,
        "feature_configs": {n: c.to_dict() for n, c in run.feature_configs.items()},
        "snippet_config": run.snippet_config.to_dict(),
        "cnn": {"members": len(run.networks), "input": run.cnn_input,
                "model_config": run.networks[0].config.to_dict() if run.networks else None},
        "familiarity": None if run.familiarity is None else {"cutoff": run.familiarity.cutoff},
        "weights": {"file": "model.safetensors", "sha256": hashlib.sha256(weights).hexdigest(),
                    "bytes": len(weights)},
    })
    tmp_weights = write_temporary(out_dir / "model.safetensors", weights)
    try:
        tmp_json = write_temporary(out_dir / "model.json", json_text(meta).encode())
    except BaseException:
        Path(tmp_weights).unlink(missing_ok=True)
        raise
    try:
        os.replace(tmp_weights, out_dir / "model.safetensors")
        os.replace(tmp_json, out_dir / "model.json")
    except OSError as exc:
        for tmp in (tmp_weights, tmp_json):
            Path(tmp).unlink(missing_ok=True)
        raise ModelError(f"{out_dir}: cannot save the run ({exc.strerror or exc})") from exc
    return out_dir / "model.json"


def load_run(path: str | os.PathLike) -> Run:
    """Load a run's models (``path``: the run folder or its ``model.json``).

    Raises
    ------
    ModelError
        A missing, garbled, tampered or incompatible file, named; an audio
        file or another file given where a run folder belongs, said so.
    """
    from progrock.model.checkpoint import describe_path_error, read_json

    json_path = describe_path_error(Path(path))
    meta = read_json(json_path)
    if meta.get("format") != FORMAT_NAME:
        raise ModelError(f"{json_path}: not a progrock model description (format {meta.get('format')!r})")
    if meta.get("format_version") == 1:
        return _run_from_checkpoint(json_path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{json_path}: unknown format version {meta.get('format_version')!r} "
                         f"(this progrock reads versions 1 and {FORMAT_VERSION})")
    try:
        return _run_from_description(json_path, meta)
    except ModelError as exc:                 # every refusal names the file it comes from
        if str(exc).startswith(str(json_path.parent)):
            raise
        raise ModelError(f"{json_path}: {exc}") from exc
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{json_path}: invalid model description ({exc})") from exc


def _run_from_checkpoint(json_path: Path) -> Run:
    """A version-1 ``model.json`` (one CNN): the models ``cnn`` and ``cnn_mean``."""
    from progrock.model.checkpoint import load_model

    cnn = load_model(json_path)
    t = cnn.threshold
    entries = {"cnn": ModelEntry("cnn", "1D-CNN, snippet vote", "vote", t),
               "cnn_mean": ModelEntry("cnn", "1D-CNN, mean probability", "mean", t)}
    return Run(entries, "cnn", {cnn.feature_config.name: cnn.feature_config}, cnn.snippet_config,
               [cnn.model], description=cnn.metadata, path=json_path, cnn_input=cnn.cnn_input)


def _run_from_description(json_path: Path, meta: dict) -> Run:
    from progrock.model.checkpoint import load_weights, read_tensors, verified_file
    from progrock.model.inputs import cnn_rows, columns_of

    if tuple(meta["class_names"]) != tuple(CLASSES):
        raise ModelError(f"{json_path}: class names {meta['class_names']} are not {list(CLASSES)}")
    entries = {n: ModelEntry(**e) for n, e in meta["models"].items()}
    for entry in entries.values():            # an input entry this version does not compute: refused now
        if entry.input:
            columns_of(entry.input, entry.columns)
    weights_path = verified_file(json_path, str(meta["weights"]["file"]), str(meta["weights"]["sha256"]))
    tensors = read_tensors(weights_path)
    networks = []
    for k in range(int(meta["cnn"]["members"])):
        net = SeedCNN(ModelConfig.from_dict(meta["cnn"]["model_config"]))
        prefix = f"cnn.{k}."
        load_weights(net, {n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)}, weights_path)
        networks.append(net.eval())
    arrays = lambda prefix: {n[len(prefix):]: t.numpy() for n, t in tensors.items() if n.startswith(prefix)}
    classical = {n: ClassicalModel(kind, arrays(f"{n}.")) for n, kind in meta.get("classical", {}).items()}
    missing = [n for n, e in entries.items() if e.kind in ("logistic", "forest", "patches") and n not in classical]
    if missing or (any(e.kind == "cnn" for e in entries.values()) and not networks):
        raise ModelError(f"{weights_path}: holds no weights for the models {missing or ['cnn']}")
    familiarity = Familiarity.from_arrays(arrays("familiarity.")) if meta.get("familiarity") else None
    if meta["default_model"] not in entries:
        raise ModelError(f"{json_path}: the default model {meta['default_model']!r} is not one of its models")
    configs = {n: FeatureConfig.from_dict(c) for n, c in meta["feature_configs"].items()}
    snippet_config = SnippetConfig.from_dict(meta["snippet_config"])
    snippet_config.check_frame_rate(configs.get("seed43") or FeatureConfig.named("seed43"))
    cnn_input = str(meta["cnn"].get("input", "seed43"))     # runs saved before the CNN could read more
    rows = cnn_rows(configs.get("seed43") or FeatureConfig.named("seed43"), cnn_input)
    if networks and networks[0].config.n_features != rows:
        raise ModelError(f"{json_path}: the CNN reads {cnn_input!r} ({rows} rows) but its network takes "
                         f"{networks[0].config.n_features}")
    return Run(entries, meta["default_model"], configs, snippet_config, networks, classical, familiarity,
               description=meta, path=json_path, cnn_input=cnn_input)
