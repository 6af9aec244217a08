"""The resumable training state: ``last.safetensors`` + ``last.json`` in the run folder.

Written atomically after every epoch: the model, Adam's state, the best
weights so far, the random generators' states (torch, the shuffling generator,
numpy) and a description (epoch, best-so-far bookkeeping, the configurations,
fingerprints of the training and validation snippets). The description also
travels inside the weights file: the two files are replaced one after the
other, and a kill between them must leave a state that can still be resumed.
On the CPU with the same thread count, a resumed training equals an
uninterrupted one bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from progrock.atomic import atomic_write_json, jsonable
from progrock.data.snippets import SnippetSet
from progrock.errors import ConfigError, ModelError
from progrock.model.checkpoint import atomic_save_tensors, read_json, read_tensors, sha256_file
from progrock.model.network import ModelConfig
from progrock.training.config import TrainConfig

STATE_FORMAT = "progrock-training-state"
STATE_VERSION = 1

RESUMABLE_CHANGES = {"epochs", "early_stopping_patience", "num_threads", "histogram_every"}
"""Settings that may change between an interrupted run and its resumption."""


def fingerprint(s: SnippetSet) -> str:
    """A cheap identity of a snippet set (songs, labels, placement, a stride of the frames' values)."""
    h = hashlib.sha256()
    h.update(repr((tuple(s.frames.x.shape), s.length)).encode())
    h.update(json.dumps(list(s.songs)).encode())
    for a in (s.song_labels, s.frames.offsets, s.song, s.start):
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    flat = s.frames.x.reshape(-1)
    h.update(np.ascontiguousarray(flat[:: max(1, flat.size // 100_000)]).tobytes())
    return h.hexdigest()


def save_state(out_dir: Path, *, model, optimizer, generator, best_state, meta: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_state.items()})
    opt = optimizer.state_dict()
    for pid, st in opt["state"].items():
        for k, v in st.items():
            tensors[f"optim.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = generator.get_state()
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    meta = dict(meta)
    meta["optimizer_param_groups"] = opt["param_groups"]
    meta["numpy_rng"] = {"name": np_state[0], "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                         "cached_gaussian": float(np_state[4])}
    weights = out_dir / "last.safetensors"
    # The description also travels inside the weights file: the two files are replaced one after
    # the other, and a kill between them must leave a state that can still be resumed.
    atomic_save_tensors(weights, tensors, metadata={_STATE_KEY: json.dumps(jsonable(meta))})
    meta["sha256"] = sha256_file(weights)
    atomic_write_json(out_dir / "last.json", meta)


_STATE_KEY = "progrock_training_state"
"""safetensors metadata key under which ``last.safetensors`` carries its own description."""


def _embedded_state(weights: Path) -> dict | None:
    """The description saved inside a training-state weights file, or ``None``."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            text = (f.metadata() or {}).get(_STATE_KEY)
        return json.loads(text) if text else None
    except Exception:  # noqa: BLE001 - any failure means: no usable description
        return None


def load_state(out_dir: Path, *, model, optimizer, generator) -> tuple[dict, dict]:
    """Restore model, optimizer and RNGs from ``last.*``; returns (meta, best_state)."""
    meta_path, weights = out_dir / "last.json", out_dir / "last.safetensors"
    meta = read_json(meta_path)
    if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
        raise ModelError(f"{meta_path}: not a progrock training state of version {STATE_VERSION}")
    if not weights.is_file():
        raise ModelError(f"{weights}: missing; cannot resume")
    t = read_tensors(weights)  # a truncated or garbled file is refused here
    if sha256_file(weights) != meta.get("sha256"):
        # Killed after the weights were replaced but before last.json was: the weights file
        # carries its own description, one epoch ahead of last.json.
        meta = _embedded_state(weights) or {}
        if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
            raise ModelError(f"{weights}: does not match the hash in {meta_path.name} and holds no "
                             f"training state of its own")
    try:
        model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
        best = {k[5:]: v for k, v in t.items() if k.startswith("best.")}
        state: dict = {}
        for k, v in t.items():
            if k.startswith("optim."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        groups = meta["optimizer_param_groups"]
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        optimizer.load_state_dict({"state": state, "param_groups": groups})
        torch.set_rng_state(t["rng.torch"])
        generator.set_state(t["rng.shuffle"])
        r = meta["numpy_rng"]
        np.random.set_state((r["name"], t["rng.numpy"].numpy().astype(np.uint32), r["pos"],
                             r["has_gauss"], r["cached_gaussian"]))
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{weights}: cannot restore the training state ({exc})") from exc
    return meta, best



def check_resume(meta: dict, *, model_config: ModelConfig, train_config: TrainConfig,
                  train_fp: str, val_fp: str, path: Path) -> None:
    if meta.get("model_config") != model_config.to_dict():
        raise ConfigError(f"{path}: saved with another model configuration: {meta.get('model_config')}")
    saved = {k: v for k, v in meta.get("train_config", {}).items() if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in train_config.to_dict().items() if k not in RESUMABLE_CHANGES}
    if saved != now:
        diffs = [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                 if saved.get(k) != now.get(k)]
        raise ConfigError(f"{path}: cannot resume with other training settings ({'; '.join(diffs)})")
    if meta.get("train_data") != train_fp or meta.get("validation_data") != val_fp:
        raise ConfigError(f"{path}: cannot resume on other training or validation snippets")
