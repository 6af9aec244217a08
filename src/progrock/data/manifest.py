"""Datasets: a folder or a CSV of songs becomes a manifest with song-level splits.

A folder's first-level sub-folders name the label (``prog/``, ``nonprog/``;
deeper nesting is allowed: ``nonprog/top_of_the_pops/x.mp3``). Any other
first-level folder is an extra named set for evaluation (``djent/``): its songs
take a label from a nested ``prog``/``nonprog`` folder if there is one, else
no label. A CSV manifest has the columns ``path,label[,split]``.

Every song is decoded once to record its duration, sample rate and the hash of
its decoded audio, and to find copies of one recording (same hash, or near-
identical fingerprints, e.g. an MP3 and a FLAC of one track). Copies form one
group; groups are split into train / validation / test, stratified by label and
seeded, so copies never straddle splits.
"""

from __future__ import annotations

import csv
import io
import os
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from progrock.audio import find_audio_files, stream_decode
from progrock.audio.fingerprint import FP_HOP, FingerprintSink, fingerprint_distance
from progrock.constants import CLASSES, SPLITS, SR
from progrock.atomic import atomic_open
from progrock.errors import DatasetError, ProgrockError
from progrock.paths import file_of, printable
from progrock.parallel.engines import LocalEngine

MANIFEST_NAME = "manifest.csv"
DUPLICATE_BER = 0.15
"""Fingerprints closer than this bit error rate are one recording."""
DUPLICATE_MIN_SECONDS = 10.0
"""Shorter songs are copies only when their decoded samples are identical."""


@dataclass
class Song:
    """One row of a manifest.

    ``path`` is relative to the manifest's folder when the file lies below it.
    ``split`` is ``train``/``validation``/``test`` or an extra set's name; empty
    for songs that could not be read (``error`` says why) or whose copies carry
    both labels.
    """

    path: str
    label: str = ""
    split: str = ""
    duration: float = 0.0
    source_sr: int = 0
    channels: int = 0
    audio_sha256: str = ""
    group: int = -1
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class Manifest:
    """Songs plus the folder their relative paths start from."""

    songs: list[Song]
    root: Path

    def resolve(self, song: Song) -> Path:
        """Absolute path of a song's file (a name written with ``\\xNN`` escapes found again, see
        :mod:`progrock.paths`)."""
        p = Path(song.path)
        return file_of(p if p.is_absolute() else self.root / p)

    def digest(self, *, splits: bool = False) -> str:
        """A short hash of the usable songs (path, audio hash, label; and split with ``splits``): a resumed
        training or cross-validation must see the same songs it started with."""
        import hashlib

        rows = sorted("\t".join([printable(s.path), s.audio_sha256, s.label] + ([s.split] if splits else []))
                      for s in self.usable())
        return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()[:16]

    def usable(self, split: str | None = None) -> list[Song]:
        """Songs without error (in ``split`` if given)."""
        return [s for s in self.songs if s.ok and s.split and (split is None or s.split == split)]

    @property
    def sets(self) -> list[str]:
        """Split and set names present, the standard splits first."""
        names = {s.split for s in self.songs if s.ok and s.split}
        return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))

    def write(self, path: str | os.PathLike) -> Path:
        """Write as CSV atomically; relative paths are re-based on the CSV's folder."""
        path = Path(path)
        folder = path.parent.resolve()
        names = [f.name for f in fields(Song)]
        try:
            with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=names)
                w.writeheader()
                for s in self.songs:
                    row = asdict(s)
                    if not Path(s.path).is_absolute() and folder != self.root:
                        row["path"] = Path(os.path.relpath(self.root / s.path, folder)).as_posix()
                    row["path"] = printable(row["path"])       # names that are not UTF-8, escaped
                    row["error"] = " ".join(row["error"].split())  # one line per song
                    w.writerow(row)
        except ProgrockError as exc:
            raise DatasetError(str(exc).replace("cannot write", "cannot write the manifest", 1)) from exc
        return path


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest written by :func:`scan` (or any CSV with ``path,label[,split]``)."""
    path = Path(path)
    rows = _read_csv(path)
    songs = []
    for row in rows:
        songs.append(Song(
            path=row["path"], label=row.get("label", "") or "", split=row.get("split", "") or "",
            duration=float(row.get("duration") or 0), source_sr=int(float(row.get("source_sr") or 0)),
            channels=int(float(row.get("channels") or 0)), audio_sha256=row.get("audio_sha256", "") or "",
            group=int(float(row.get("group") or -1)), error=row.get("error", "") or ""))
    return Manifest(songs=songs, root=path.parent.resolve())


_LINE = "\0line"
"""Key under which :func:`_read_csv` keeps each row's line number."""


_NAMING_COLUMNS = ("path", "label", "split")


def _read_csv(path: Path) -> list[dict]:
    """Rows of a CSV as dictionaries; anything malformed is a :class:`DatasetError` naming the line.

    Refused: text that is not UTF-8, a quote left open, a row with more or
    fewer fields than the header, control characters (NUL, line breaks) in a
    path, label or split. Blank lines are skipped.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read manifest: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a manifest: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                           f"offset {exc.start}); save the CSV as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows = []
    try:
        for fields_ in reader:
            i = reader.line_num
            if not any(f.strip() for f in fields_):
                continue  # blank line
            if header is None:
                header = [h.strip() for h in fields_]
                if "path" not in header:
                    raise DatasetError(f"{path}: not a manifest: the header must name a 'path' column "
                                       f"(got {header})")
                continue
            if len(fields_) != len(header):
                more = "more" if len(fields_) > len(header) else "fewer"
                raise DatasetError(f"{path}, line {i}: {more} fields than the header names "
                                   f"({len(fields_)}, the header has {len(header)}: {', '.join(header)})")
            row = {k: v.strip() for k, v in zip(header, fields_) if k}
            for key in _NAMING_COLUMNS:
                if any(unicodedata.category(ch) == "Cc" for ch in row.get(key, "")):
                    raise DatasetError(f"{path}, line {i}: the {key} holds control characters "
                                       f"(NUL, line breaks...): {row[key][:60]!r}")
            row[_LINE] = i
            rows.append(row)
    except csv.Error as exc:
        raise DatasetError(f"{path}, line {reader.line_num}: malformed CSV ({exc}; is a quote left open?)") from None
    if header is None:
        raise DatasetError(f"{path}: not a manifest: the header must name a 'path' column (the file is empty)")
    return rows


def list_songs(source: str | os.PathLike) -> tuple[list[Song], Path]:
    """Songs named by a folder layout or a CSV, before any decoding.

    Returns
    -------
    songs : list of Song
        Labels and, for extra sets or a CSV's split column, the split filled in.
    root : Path
        The folder paths are relative to.
    """
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: no such folder or manifest")
    if source.is_dir():
        return _list_folder(source), source.resolve()
    return _list_csv(source), source.parent.resolve()


def _list_folder(root: Path) -> list[Song]:
    """Songs under ``root``; a sub-folder that cannot be read is a song row with the reason as its error."""
    songs = []
    skipped: list[tuple[str, str]] = []
    found = find_audio_files(root, skipped=skipped)
    rows = [(p, "") for p in found] + [(Path(p), reason) for p, reason in skipped]
    for p, error in rows:
        if p == root:
            raise DatasetError(f"{root}: {error}")
        parts = p.relative_to(root).parts
        top = parts[0] if len(parts) > 1 or error else ""
        if top in CLASSES:
            songs.append(Song(path=p.relative_to(root).as_posix(), label=top, error=error))
        elif top:
            label = next((q for q in parts[1:-1] if q in CLASSES), "")
            songs.append(Song(path=p.relative_to(root).as_posix(), label=label,
                              split="" if error else printable(top), error=error))
    if not any(s.ok for s in songs) and not skipped:
        raise DatasetError(f"{root}: no audio files in prog/ or nonprog/ (or other set folders)")
    return songs


def _list_csv(path: Path) -> list[Song]:
    songs, seen = [], {}
    for row in _read_csv(path):
        i = row[_LINE]
        label = row.get("label", "")
        if label not in CLASSES and label != "":
            raise DatasetError(f"{path}, line {i}: unknown label {label!r} (expected one of {CLASSES})")
        if not row["path"]:
            raise DatasetError(f"{path}, line {i}: empty path")
        # One file however it is spelt (./a.flac, a.flac, x/../a.flac): listed twice, it would count twice.
        key = os.path.normpath(row["path"])
        split = row.get("split", "")
        if key in seen:
            if seen[key] != (label, split):
                raise DatasetError(f"{path}, line {i}: {row['path']} listed again with another label "
                                   f"or split ({seen[key]} before, now {(label, split)})")
            continue  # an identical duplicate row is dropped
        seen[key] = (label, split)
        songs.append(Song(path=row["path"], label=label, split=split))
    if not songs:
        raise DatasetError(f"{path}: the manifest lists no songs")
    return songs


def _probe(path: str) -> dict:
    """Decode one file block by block: duration, rates, hash, fingerprint (runs in a worker)."""
    try:
        sink, info = stream_decode(path, FingerprintSink)
        fp = sink.finish()
    except ProgrockError as exc:
        return {"error": getattr(exc, "reason", str(exc))}
    except Exception as exc:  # noqa: BLE001 - a decoder crash must not stop a batch
        return {"error": f"unexpected {type(exc).__name__}: {exc}"}
    return {"duration": round(info.duration, 3), "source_sr": info.source_sr,
            "channels": info.channels, "audio_sha256": info.sha256, "warnings": list(info.warnings),
            "fp": np.packbits(fp, axis=1), "fp_frames": fp.shape[1]}


def _group_copies(songs: list[Song], fps: dict[int, np.ndarray]) -> None:
    """Give copies of one recording one group id (union-find over near pairs)."""
    parent = list(range(len(songs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_hash: dict[str, int] = {}
    for i, s in enumerate(songs):
        if s.ok and s.audio_sha256:
            if s.audio_sha256 in by_hash:
                parent[find(i)] = find(by_hash[s.audio_sha256])
            else:
                by_hash[s.audio_sha256] = i
    min_frames = int(DUPLICATE_MIN_SECONDS * SR / FP_HOP)
    # Candidates for near copies: durations within 1 s (sorted sweep).
    order = sorted((i for i in fps), key=lambda i: songs[i].duration)
    for a_pos, i in enumerate(order):
        for j in order[a_pos + 1:]:
            if songs[j].duration - songs[i].duration > 1.0:
                break
            if find(i) != find(j) and fingerprint_distance(
                    fps[i], fps[j], min_frames=min_frames) < DUPLICATE_BER:
                parent[find(j)] = find(i)
    roots: dict[int, int] = {}
    for i, s in enumerate(songs):
        if s.ok:
            s.group = roots.setdefault(find(i), len(roots))


def assign_splits(songs: list[Song], *, seed: int = 0,
                  fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> None:
    """Split songs without a split into train / validation / test, in place.

    Groups (copies of one recording) move together; each label's groups are
    shuffled with ``seed`` and dealt out by ``fractions``, so every split holds
    about the same share of each class. A group whose songs carry both labels
    is left out of every split with an error.
    """
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise DatasetError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    members: dict[int, list[Song]] = defaultdict(list)
    for s in songs:
        if s.ok and s.group >= 0:
            members[s.group].append(s)
    by_label: dict[str, list[int]] = defaultdict(list)
    for g, ss in sorted(members.items()):
        labels = {s.label for s in ss if s.label}
        if len(labels) > 1:
            others = ", ".join(sorted(s.path for s in ss))
            for s in ss:
                s.error = f"the same recording is labelled both {' and '.join(sorted(labels))}: {others}"
                s.split = ""
            continue
        # Songs in an extra set keep it; the rest of the group moves as one.
        free = [s for s in ss if not s.split or s.split in SPLITS]
        members[g] = free
        given = {s.split for s in free if s.split}
        if given:  # a CSV's split column: the whole group follows it
            split = sorted(given)[0]
            for s in free:
                s.split = split
            continue
        for s in free:
            if not s.label:
                s.error = "no label: put it under prog/ or nonprog/, or give a label in the CSV"
        if free and free[0].label:
            by_label[free[0].label].append(g)
    rng = np.random.default_rng(seed)
    for label in sorted(by_label):
        groups = by_label[label]
        rng.shuffle(groups)
        n = len(groups)
        n_train = int(round(fractions[0] * n))
        n_val = int(round(fractions[1] * n))
        if n >= 3 and fractions[1] > 0 and n_val == 0:
            n_val = 1
            n_train = min(n_train, n - 2) if fractions[2] > 0 else n - 1
        cut = {"train": groups[:n_train], "validation": groups[n_train:n_train + n_val],
               "test": groups[n_train + n_val:]}
        for split, gs in cut.items():
            for g in gs:
                for s in members[g]:
                    s.split = split


def scan(source: str | os.PathLike, *, seed: int = 0,
         fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), jobs: int = 1,
         progress: Callable[[int], None] | None = None,
         on_total: Callable[[int], None] | None = None, split: bool = True) -> Manifest:
    """Read a folder or CSV, decode every song once, group copies and split.

    Parameters
    ----------
    source : path
        A folder (``prog/``, ``nonprog/``, extra set folders) or a CSV.
    seed : int
        Seed of the split.
    fractions : (float, float, float)
        Train, validation and test shares of each class.
    jobs : int
        Worker processes for decoding.
    progress, on_total : callable, optional
        ``on_total(n)`` once, then ``progress(1)`` per decoded song.
    split : bool
        With ``False`` nothing is split: new data judged by a trained run keeps
        the sets its layout names (a CSV's ``split`` column, extra set folders),
        and every other song goes into one set named after the folder or CSV.

    Returns
    -------
    Manifest
        Unreadable songs are kept with ``error`` set, never silently dropped.
    """
    songs, root = list_songs(source)
    manifest = Manifest(songs=songs, root=root)
    todo = [i for i, s in enumerate(songs) if s.ok]  # an unreadable folder is listed, not probed
    if on_total:
        on_total(len(todo))
    paths = [str(manifest.resolve(songs[i])) for i in todo]
    fps: dict[int, np.ndarray] = {}
    probes = LocalEngine(jobs).map_ordered(_probe, paths, progress=progress,
                                           on_error=lambda _path, reason: {"error": reason})
    for i, info in zip(todo, probes):
        s = songs[i]
        if "error" in info:
            s.error, s.split = info["error"], ""
            continue
        s.duration, s.source_sr = info["duration"], info["source_sr"]
        s.channels, s.audio_sha256 = info["channels"], info["audio_sha256"]
        fps[i] = np.unpackbits(info["fp"], axis=1, count=info["fp_frames"]).astype(bool)
    _group_copies(songs, fps)
    if split:
        assign_splits(songs, seed=seed, fractions=fractions)
    else:
        whole = set_name_of(source)
        for s in songs:
            if s.ok and not s.split:
                s.split = whole
    return manifest


def set_name_of(source: str | os.PathLike) -> str:
    """The set a folder's or CSV's songs form when judged whole: its name (``albums``, ``my-list``)."""
    p = Path(source).resolve()
    return printable(p.stem if p.is_file() else p.name)


def summary(manifest: Manifest) -> list[dict]:
    """Rows per set and class: songs, copies grouped, hours. For the summary table."""
    rows = []
    counts: Counter = Counter()
    hours: Counter = Counter()
    for s in manifest.songs:
        if s.ok and s.split:
            counts[(s.split, s.label or "-")] += 1
            hours[(s.split, s.label or "-")] += s.duration / 3600
    for split in manifest.sets:
        for label in list(CLASSES) + ["-"]:
            if counts[(split, label)]:
                rows.append({"set": split, "label": label, "songs": counts[(split, label)],
                             "hours": hours[(split, label)]})
    return rows
