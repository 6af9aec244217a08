"""Convert musicnn's MSD checkpoint from its PyPI wheel to safetensors + JSON.

::

    pip download --no-deps musicnn==0.1.0
    python -m progrock.features.musicnn.convert musicnn-0.1.0-py3-none-any.whl OUT_DIR

reads ``musicnn/MSD_musicnn/`` straight from the wheel (a zip file; nothing
is installed or executed), keeps the model's 792,079 values (not the Adam
slots), puts each in the layout of :class:`~progrock.features.musicnn.network.MusicnnMSD`
and writes, deterministically (the same bytes every time):

* ``msd_musicnn.safetensors``: the tensors under the network's names;
* ``msd_musicnn.json``: tags, preprocessing, the SHA-256 of the wheel, of the
  checkpoint files and of the safetensors file, the name mapping (our name ->
  TensorFlow variable and axis permutation), licence and provenance;
* ``LICENSE.musicnn``: musicnn's ISC licence, from the wheel, with a note on
  where the weights come from.

The files shipped in ``progrock/features/musicnn/weights/`` are this output;
``tests/test_musicnn.py`` rebuilds them from the wheel and compares bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from progrock.atomic import atomic_write_bytes
from progrock.errors import ModelError, ProgrockError
from progrock.features.musicnn import preprocess as pp
from progrock.features.musicnn.network import (FORMAT_NAME, FORMAT_VERSION, PROG_TAG, TAGS,
                                            WEIGHTS_NAME, MusicnnMSD)
from progrock.features.musicnn.tfbundle import read_bundle

CHECKPOINT = "musicnn/MSD_musicnn/"
"""Folder of the MSD musicnn checkpoint inside the wheel."""

CHECKPOINT_FILES = (".index", ".data-00000-of-00001", "config.json")
"""Files of the checkpoint whose SHA-256 is recorded (the first two are read)."""

LICENCE_MEMBER = "musicnn-0.1.0.dist-info/LICENSE.md"
LICENCE = {"name": "ISC", "url": "https://github.com/jordipons/musicnn/blob/master/LICENSE.md",
           "file": "LICENSE.musicnn"}
SOURCE_URL = "https://pypi.org/project/musicnn/0.1.0/"
CITATION = ("Jordi Pons and Xavier Serra, musicnn: pre-trained convolutional neural networks "
            "for music audio tagging, ISMIR 2019 late-breaking/demo")

_CONV2D = (3, 2, 0, 1)   # TensorFlow (kh, kw, in, out) -> PyTorch (out, in, kh, kw)
_CONV1D = (3, 1, 0, 2)   # TensorFlow (k, in, 1, out) -> (out, in, k, 1), then the 1 dropped
_DENSE = (1, 0)          # TensorFlow (in, out) -> PyTorch (out, in)


def _layers() -> list[tuple[str, str, str | None, tuple[int, ...]]]:
    """(our module, TensorFlow layer, its batch norm, kernel permutation), in graph order."""
    convs = (["timbral.0", "timbral.1", "temporal.0", "temporal.1", "temporal.2"],
             ["midend.0", "midend.1", "midend.2"])
    rows: list[tuple[str, str, str | None, tuple[int, ...]]] = []
    i = 0
    for group, permute in zip(convs, (_CONV2D, _CONV1D)):
        for ours in group:
            rows.append((ours, "conv2d" + (f"_{i}" if i else ""), f"batch_normalization_{i + 1}", permute))
            i += 1
    rows.append(("backend.dense", "dense", None, _DENSE))
    rows.append(("backend.output", "dense_1", None, _DENSE))
    return rows


def variable_map() -> dict[str, tuple[str, tuple[int, ...]]]:
    """Our tensor name -> (TensorFlow variable, axis permutation applied to it)."""
    out: dict[str, tuple[str, tuple[int, ...]]] = {}

    def norm(ours: str, tf: str) -> None:
        for mine, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            out[f"{ours}.{mine}"] = (f"{tf}/{theirs}", (0,))

    norm("input_bn", "batch_normalization")
    for ours, tf, bn, permute in _layers():
        out[f"{ours}.{'conv.' if bn else ''}weight"] = (f"{tf}/kernel", permute)
        out[f"{ours}.{'conv.' if bn else ''}bias"] = (f"{tf}/bias", (0,))
        if bn:
            norm(f"{ours}.bn", bn)
    norm("backend.pool_bn", "batch_normalization_9")
    norm("backend.dense_bn", "batch_normalization_10")
    return out


def _is_model_variable(name: str) -> bool:
    # Adam's slots and its beta powers are training state, not the model.
    return "Adam" not in name and not name.startswith("beta")


def convert_tensors(bundle: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The network's tensors from the checkpoint's variables.

    Raises
    ------
    ModelError
        A model variable is missing, left over, or of the wrong shape.
    """
    mapping = variable_map()
    model_vars = {k for k in bundle if _is_model_variable(k)}
    used = {tf for tf, _ in mapping.values()}
    if model_vars != used:
        raise ModelError(f"checkpoint variables do not match MSD musicnn: missing "
                         f"{sorted(used - model_vars)}, unexpected {sorted(model_vars - used)}")
    state = MusicnnMSD().state_dict()
    tensors = {}
    for ours, (tf, permute) in mapping.items():
        value = bundle[tf]
        if value.dtype != np.float32:
            raise ModelError(f"checkpoint variable {tf} is {value.dtype}, not float32")
        value = np.transpose(value, permute) if value.ndim > 1 else value
        shape = tuple(state[ours].shape)
        if value.size != int(np.prod(shape)):
            raise ModelError(f"checkpoint variable {tf} has shape {bundle[tf].shape}, "
                             f"{ours} needs {shape}")
        tensors[ours] = np.ascontiguousarray(value.reshape(shape))
    return tensors


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_wheel(wheel: Path) -> tuple[bytes, dict[str, bytes]]:
    try:
        raw = wheel.read_bytes()
    except OSError as exc:
        raise ModelError(f"{wheel}: cannot read the musicnn wheel ({exc.strerror or exc})") from None
    members = {}
    try:
        with zipfile.ZipFile(wheel) as z:
            for name in [CHECKPOINT + f for f in CHECKPOINT_FILES] + [LICENCE_MEMBER]:
                members[name] = z.read(name)
    except zipfile.BadZipFile:
        raise ModelError(f"{wheel}: not a wheel (not a zip file)") from None
    except KeyError as exc:
        raise ModelError(f"{wheel}: no {exc.args[0]} inside; is it musicnn 0.1.0?") from None
    return raw, members


def _description(wheel: Path, wheel_sha: str, members: dict[str, bytes], tensors: dict[str, np.ndarray],
                 blob: bytes) -> dict:
    n_values = sum(int(t.size) for t in tensors.values())
    n_stats = sum(int(t.size) for k, t in tensors.items() if k.endswith(("running_mean", "running_var")))
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": "MSD_musicnn",
        "description": "musicnn (Pons & Serra 2019) trained on the Million Song Dataset: "
                       "50 tag probabilities and a 200-value embedding per 3-s patch",
        "tags": list(TAGS),
        "prog_tag": PROG_TAG,
        "preprocessing": {
            "sr": pp.SR, "n_fft": pp.N_FFT, "hop_length": pp.HOP_LENGTH, "n_mels": pp.N_MELS,
            "window": "hann", "power": 2.0, "center": True, "pad_mode": "constant",
            "mel": "librosa.filters.mel defaults (Slaney scale and normalisation)",
            "compression": "log10(10000 * float16(mel power) + 1), in float32",
            "patch_frames": pp.PATCH_FRAMES, "patch_hop_frames": pp.PATCH_FRAMES,
        },
        "values": {"total": n_values, "trainable": n_values - n_stats, "batch_norm_statistics": n_stats},
        "weights": {"file": f"{WEIGHTS_NAME}.safetensors", "sha256": _sha256(blob), "bytes": len(blob)},
        "source": {
            "package": "musicnn==0.1.0", "url": SOURCE_URL, "citation": CITATION,
            "wheel": wheel.name, "wheel_sha256": wheel_sha,
            "checkpoint_sha256": {name: _sha256(members[name]) for name in sorted(members)
                                  if name.startswith(CHECKPOINT)},
        },
        "licence": LICENCE,
        "variables": {ours: {"tensorflow": tf, "permute": list(permute), "shape": list(tensors[ours].shape)}
                      for ours, (tf, permute) in variable_map().items()},
    }


def _licence_text(members: dict[str, bytes]) -> bytes:
    note = (
        "The files msd_musicnn.safetensors and msd_musicnn.json beside this notice are the\n"
        "MSD_musicnn checkpoint of musicnn 0.1.0 (" + SOURCE_URL + "),\n"
        "converted without change of value by progrock.features.musicnn.convert (variables\n"
        "renamed and axes permuted as msd_musicnn.json records). musicnn's licence follows.\n\n"
    )
    return note.encode() + members[LICENCE_MEMBER].rstrip(b"\n") + b"\n"


def convert_wheel(wheel: str | Path, out_dir: str | Path) -> Path:
    """Write ``msd_musicnn.safetensors``, ``.json`` and ``LICENSE.musicnn`` from musicnn's wheel.

    Parameters
    ----------
    wheel : str or Path
        ``musicnn-0.1.0-py3-none-any.whl``.
    out_dir : str or Path
        Created if missing; the three files are replaced atomically.

    Returns
    -------
    Path
        The ``.safetensors`` file.

    Raises
    ------
    ModelError
        The wheel is unreadable, not a zip, lacks the checkpoint, or the
        checkpoint is damaged (see :class:`~progrock.features.musicnn.tfbundle.BundleError`).
    """
    from safetensors.numpy import save

    wheel, out_dir = Path(wheel), Path(out_dir)
    raw, members = _read_wheel(wheel)
    try:
        bundle = read_bundle(members[CHECKPOINT + ".index"], members[CHECKPOINT + ".data-00000-of-00001"])
    except ModelError as exc:
        raise ModelError(f"{wheel}: {exc}") from None
    tensors = convert_tensors(bundle)
    blob = save(tensors)
    info = _description(wheel, _sha256(raw), members, tensors, blob)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{WEIGHTS_NAME}.safetensors"
    atomic_write_bytes(path, blob)
    atomic_write_bytes(out_dir / LICENCE["file"], _licence_text(members))
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(info, indent=2) + "\n").encode())
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m progrock.features.musicnn.convert WHEEL OUT_DIR``; exit status 0, or 2 on an error."""
    parser = argparse.ArgumentParser(prog="python -m progrock.features.musicnn.convert",
                                     description="Convert musicnn's MSD checkpoint to safetensors + JSON.")
    parser.add_argument("wheel", type=Path, help="musicnn-0.1.0-py3-none-any.whl")
    parser.add_argument("out_dir", type=Path, help="folder for the converted files")
    args = parser.parse_args(argv)
    try:
        path = convert_wheel(args.wheel, args.out_dir)
    except ProgrockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
