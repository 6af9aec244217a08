"""Training speed and song-level equivalence: a plain PyTorch loop against ``train_model``, side by side.

One command::

    .venv/bin/python benchmarks/bench_training.py                      # all three cases, about 25 min
    .venv/bin/python benchmarks/bench_training.py --only speed          # about 4 min
    .venv/bin/python benchmarks/bench_training.py --only threads        # about 1 min
    .venv/bin/python benchmarks/bench_training.py --only equivalence    # about 15 min

1. **speed** - the seed's data size: 11,000 training snippets of 43 x 431 and
   2,500 validation snippets (synthetic numbers, in songs of 30 snippets; the
   speed does not depend on the values). The reference is the straightforward
   loop anyone would write: the seed's network as an ``nn.Sequential`` with an
   explicit normalisation layer and ``Conv1d``, batches gathered by fancy
   indexing (no DataLoader), Adam 1e-3, BCE with the same ``pos_weight``, and
   a validation pass with song votes every epoch. Ours is
   :func:`progrock.training.train_model` with the same settings (it also
   writes its resumable state, history and TensorBoard events every epoch).
   Both run ``--epochs`` epochs per round, interleaved, ``--rounds`` rounds,
   each side in a fresh process (``train_model`` sets glibc's allocator
   thresholds for the process; the plain loop must not inherit them); seconds
   per epoch are wall time between consecutive epoch ends (so set-up
   is left out and everything an epoch does is in), the median over a round,
   the best round kept.

2. **threads** - where the two cores go: one epoch of ``train_model``'s step
   with one thread, and with each batch split in two parts on two threads
   (``BatchThreads``).

3. **equivalence** - the synthetic demo corpus (``progrock.corpus``, 160 songs,
   generated and featured once into the cache folder), train / validation as
   ``progrock train`` cuts them. For each seed both loops train
   ``--eq-epochs`` epochs from the same initial weights; printed: the best
   epoch's validation song balanced accuracy (the model-selection metric) and
   the test song balanced accuracy of the selected weights, per seed and as
   mean and standard deviation. The seeds' spread is the run-to-run noise the
   two means are compared against.

Threads: ``--threads`` (default 2) for both sides. The load average is printed
with every figure: the machine is shared, and wall time on two cores is only
meaningful when the load is below 2. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "progrock-bench"


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


# ---------------------------------------------------------------------------
# The reference: the seed's network and loop written the plain way


class Normalise(nn.Module):
    def __init__(self, n_features: int):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(n_features))
        self.log_scale = nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        return (x - self.mean[:, None]) * torch.exp(self.log_scale)[:, None]


class NoisyVote(nn.Module):
    def forward(self, scores):
        if not self.training:
            return scores.mean(dim=-1)
        w = 0.5 + torch.rand_like(scores)
        return ((w / w.sum(dim=-1, keepdim=True)) * scores).sum(dim=-1)


def reference_network(n_features: int = 43) -> nn.Sequential:
    layers: list[nn.Module] = [Normalise(n_features), nn.Conv1d(n_features, 16, 1), nn.ELU(),
                               nn.Dropout1d(0.1)]
    c = 16
    for _ in range(6):
        layers += [nn.Conv1d(c, 8, 5, padding="same"), nn.ELU(), nn.Dropout1d(0.1), nn.MaxPool1d(2)]
        c = 8
    layers += [nn.Conv1d(c, 1, 1), nn.Flatten(), NoisyVote()]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.kaiming_uniform_(m.weight, a=0.0, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


def copy_from_seed_cnn(net: nn.Sequential, model) -> None:
    """Give the reference the weights of a :class:`SeedCNN` (same initial point for both loops)."""
    convs = [m for m in net if isinstance(m, nn.Conv1d)]
    with torch.no_grad():
        net[0].mean.copy_(model.normalisation.mean)
        net[0].log_scale.copy_(model.normalisation.log_scale)
        for mine, theirs in zip(convs, model.conv_layers().values()):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)


def song_balanced_accuracy(probs: np.ndarray, song: np.ndarray, labels: np.ndarray) -> float:
    """The seed's vote (share of snippets with p >= 0.5; a tie is prog), balanced accuracy over songs."""
    votes = np.bincount(song, weights=probs >= 0.5, minlength=len(labels))
    pred = votes / np.bincount(song, minlength=len(labels)) >= 0.5
    return float(np.mean([np.mean(pred[labels == c] == c) for c in (0, 1)]))


def reference_train(train, val, *, epochs: int, seed: int, pos_weight: float, batch_size: int = 1024,
                    lr: float = 1e-3, init=None, on_epoch=None) -> tuple[nn.Sequential, float, int]:
    """The plain loop; returns the best epoch's network, its validation song balanced accuracy, the epoch."""
    from progrock.training import feature_statistics

    torch.manual_seed(seed)
    net = reference_network(train.x.shape[1])
    mean, std = feature_statistics(train.x)
    with torch.no_grad():
        net[0].mean.copy_(torch.from_numpy(mean).float())
        net[0].log_scale.copy_(torch.from_numpy(-np.log(std + 1e-6)).float())
    if init is not None:
        copy_from_seed_cnn(net, init)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight], dtype=torch.float32))
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y.astype(np.float32))
    xv = torch.from_numpy(val.x)
    gen = torch.Generator().manual_seed(seed)
    best, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, epochs + 1):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(xv[i:i + batch_size]) for i in range(0, len(xv), batch_size)])
            float(loss_fn(logits, torch.from_numpy(val.y.astype(np.float32))))
        metric = song_balanced_accuracy(torch.sigmoid(logits).numpy(), val.song, val.song_labels)
        if metric > best:
            best, best_epoch, best_state = metric, epoch, copy.deepcopy(net.state_dict())
        if on_epoch:
            on_epoch(epoch)
    net.load_state_dict(best_state)
    return net.eval(), best, best_epoch


def ours_train(train, val, *, epochs: int, seed: int, threads: int, out_dir, on_epoch=None):
    from progrock.data.snippets import SnippetConfig
    from progrock.features import FeatureConfig
    from progrock.model.network import ModelConfig
    from progrock.training import TrainConfig, train_model

    tc = TrainConfig(epochs=epochs, batch_size=1024, lr=1e-3, seed=seed, num_threads=threads)
    return train_model(train, val, model_config=ModelConfig(n_frames=train.x.shape[2]), train_config=tc,
                       out_dir=out_dir, feature_config=FeatureConfig(), snippet_config=SnippetConfig(),
                       progress=(lambda e, _r: on_epoch(e)) if on_epoch else None)


# ---------------------------------------------------------------------------
# 1. speed


def synthetic_set(n: int, seed: int, per_song: int = 30):
    """``n`` snippets of 43 x 431 in songs of ``per_song``; every third song is prog."""
    from progrock.data.snippets import SnippetSet

    rng = np.random.default_rng(seed)
    x = np.empty((n, 43, 431), dtype=np.float32)
    offset = rng.uniform(-30, 30, (43, 1)).astype(np.float32)
    scale = rng.uniform(0.5, 20, (43, 1)).astype(np.float32)
    for i in range(0, n, 500):
        x[i:i + 500] = rng.standard_normal((min(500, n - i), 43, 431), dtype=np.float32) * scale + offset
    song = np.arange(n) // per_song
    n_songs = int(song[-1]) + 1
    labels = (np.arange(n_songs) % 3 == 0).astype(np.int64)
    x[labels[song] == 1, 2:6] += 2.0
    return SnippetSet.from_arrays(x, song, [f"s{seed}_{i}" for i in range(n_songs)], labels)


def epoch_seconds(stamps: list[float]) -> float:
    gaps = np.diff(stamps)
    return float(np.median(gaps)) if len(gaps) else float("nan")


def speed_side(args) -> None:
    """One side of the speed case, in a process of its own: prints one JSON line."""
    import json

    from progrock.training import positive_weight

    torch.set_num_threads(args.threads)
    train, val = synthetic_set(args.n_train, 1), synthetic_set(args.n_val, 2)
    pw = positive_weight(train.y, "balanced")
    load0 = load()
    stamps: list[float] = []
    t0 = time.perf_counter()
    if args.speed_side == "reference":
        reference_train(train, val, epochs=args.epochs, seed=0, pos_weight=pw,
                        on_epoch=lambda e: stamps.append(time.perf_counter()))
    else:
        with tempfile.TemporaryDirectory() as d:
            ours_train(train, val, epochs=args.epochs, seed=0, threads=args.threads, out_dir=d,
                       on_epoch=lambda e: stamps.append(time.perf_counter()))
    print(json.dumps({"per_epoch": epoch_seconds(stamps), "total": time.perf_counter() - t0,
                      "load": [load0, load()]}))


def case_speed(args) -> None:
    """Each side runs in a fresh process (``--speed-side``), so neither inherits the other's
    allocator state: ``train_model`` raises glibc's malloc thresholds, the plain loop would not."""
    import json
    import subprocess

    print(f"\n## speed: {args.n_train} training x {args.n_val} validation snippets of 43 x 431, "
          f"batch 1024, {args.epochs} epochs per round, {args.threads} threads, each side in its own process")
    rows = []
    for r in range(args.rounds):
        for side in ("reference", "ours"):
            cmd = [sys.executable, __file__, "--speed-side", side, "--threads", str(args.threads),
                   "--epochs", str(args.epochs), "--n-train", str(args.n_train), "--n-val", str(args.n_val)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            rows.append((side, res["per_epoch"]))
            print(f"round {r + 1} {side:9s}  {res['per_epoch']:6.3f} s/epoch   ({res['total']:6.1f} s for "
                  f"{args.epochs} epochs with set-up)   load {res['load'][0]} -> {res['load'][1]}", flush=True)
    best = {side: min(p for s, p in rows if s == side) for side in ("reference", "ours")}
    print(f"\n| side | s/epoch (best round) | 300 epochs | ratio |\n|---|---:|---:|---:|")
    for side in ("reference", "ours"):
        print(f"| {side} | {best[side]:.3f} | {300 * best[side] / 60:.1f} min | "
              f"{best['reference'] / best[side]:.2f} |")


def case_threads(args) -> None:
    """Where two cores go: one training epoch of ``train_model``'s step on one and on two threads.

    The same epoch function (:func:`progrock.training.loop._train_epoch`, the
    compiled CPU backend) on the seed-size set: one thread, and
    :class:`~progrock.training.threads.BatchThreads` with each batch in two
    parts on two threads. Rounds interleaved, best and median of ``--rounds``
    kept.
    """
    from progrock.parallel.malloc import array_friendly_malloc
    from progrock.model.network import ModelConfig, SeedCNN
    from progrock.training.loop import _train_epoch, feature_statistics
    from progrock.training.threads import BatchThreads

    array_friendly_malloc(trim_bytes=512 << 20)          # as train_model does
    train = synthetic_set(args.n_train, 1)
    torch.manual_seed(0)
    model = SeedCNN(ModelConfig())
    model.normalisation.initialise(*feature_statistics(train.x))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    ways = {"one thread": 1, "BatchThreads(2): 2 parts, 1 thread each": 2}
    print(f"\n## threads: one training epoch ({len(train)} snippets, batch 1024), {args.rounds + 1} rounds, "
          f"the first dropped (warm-up); load {load()}")
    times: dict[str, list[float]] = {w: [] for w in ways}
    for r in range(args.rounds + 1):
        for way, parts in ways.items():
            with BatchThreads(parts) as threads:
                t0 = time.perf_counter()
                _train_epoch(model, opt, train, 2.0, gen, 1024, threads)
                if r:
                    times[way].append(time.perf_counter() - t0)
    one = min(times["one thread"])
    print("| threading | s / epoch best | median | speed-up over one thread |\n|---|---:|---:|---:|")
    for way, t in times.items():
        print(f"| {way} | {min(t):.3f} | {statistics.median(t):.3f} | {one / min(t):.2f} |")
    print(f"(load {load()})")


# ---------------------------------------------------------------------------
# 2. equivalence


def demo_sets(cache: Path, n_songs: int):
    from progrock import workflow
    from progrock.corpus import generate_corpus
    from progrock.data.dataset import snippet_sets
    from progrock.data.snippets import SnippetConfig
    from progrock.features import FeatureConfig

    root = cache / f"demo{n_songs}"
    if not (root / "corpus" / "corpus.json").is_file():
        print(f"generating a {n_songs}-song demo corpus in {root} (once) ...", flush=True)
        generate_corpus(root / "corpus", n_songs=n_songs, seed=0, difficulty=0.3, jobs=os.cpu_count() or 1)
    manifest = workflow.open_dataset(root / "corpus", seed=0, jobs=os.cpu_count() or 1)
    data = workflow.song_features(manifest, FeatureConfig(), root / "features", jobs=os.cpu_count() or 1)
    sets = snippet_sets(data, SnippetConfig())
    test = snippet_sets(data, SnippetConfig(), sets=["test"], training=False)["test"]
    return sets["train"], sets["validation"], test


def case_equivalence(args) -> None:
    from progrock.model.network import predict_proba
    from progrock.training import positive_weight

    torch.set_num_threads(args.threads)
    train, val, test = demo_sets(Path(args.cache), args.demo_songs)
    pw = positive_weight(train.y, "balanced")
    print(f"\n## equivalence: demo corpus of {args.demo_songs} songs: {len(train)} training snippets "
          f"({len(train.songs)} songs), {len(val)} validation ({len(val.songs)} songs), {len(test)} test "
          f"({len(test.songs)} songs); {args.eq_epochs} epochs, batch 1024, Adam 1e-3, {args.threads} threads; "
          f"load {load()}")
    print("\n| seed | reference val | ours val | reference test | ours test | best epoch ref / ours |")
    print("|---:|---:|---:|---:|---:|---|")
    res = {k: [] for k in ("rv", "ov", "rt", "ot")}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as d:
            ours = ours_train(train, val, epochs=args.eq_epochs, seed=seed, threads=args.threads, out_dir=d)
        # the same initial weights: ours' initial model is rebuilt from the same seed
        from progrock.model.network import ModelConfig, SeedCNN
        torch.manual_seed(seed)
        init = SeedCNN(ModelConfig(n_frames=train.x.shape[2]))
        from progrock.training import feature_statistics
        init.normalisation.initialise(*feature_statistics(train.x))
        ref, ref_val, ref_epoch = reference_train(train, val, epochs=args.eq_epochs, seed=seed, pos_weight=pw,
                                                  init=init)
        with torch.no_grad():
            ref_test_p = torch.sigmoid(torch.cat([ref(torch.from_numpy(test.x[i:i + 1024]))
                                                  for i in range(0, len(test), 1024)])).numpy()
        ours_val = max(h["balanced_accuracy_song_validation"] for h in ours.history)
        ours_test_p = predict_proba(ours.model, test.x)
        rt = song_balanced_accuracy(ref_test_p, test.song, test.song_labels)
        ot = song_balanced_accuracy(ours_test_p, test.song, test.song_labels)
        for k, v in zip(("rv", "ov", "rt", "ot"), (ref_val, ours_val, rt, ot)):
            res[k].append(v)
        print(f"| {seed} | {ref_val:.3f} | {ours_val:.3f} | {rt:.3f} | {ot:.3f} | {ref_epoch} / {ours.best_epoch} |",
              flush=True)
    sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
    print("| mean ± sd | " + " | ".join(f"{np.mean(res[k]):.3f} ± {sd(res[k]):.3f}" for k in ("rv", "ov", "rt", "ot"))
          + " | |")
    print(f"(test = song balanced accuracy at p >= 0.5 of the weights each loop selected; load {load()})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=("speed", "threads", "equivalence"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5, help="epochs per side and round (speed)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--n-train", type=int, default=11_000)
    p.add_argument("--n-val", type=int, default=2_500)
    p.add_argument("--eq-epochs", type=int, default=60)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--demo-songs", type=int, default=160)
    p.add_argument("--cache", default=str(DEFAULT_CACHE))
    p.add_argument("--speed-side", choices=("reference", "ours"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.speed_side:
        speed_side(args)
        return 0
    import platform
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}, load {load()}")
    if args.only in (None, "speed"):
        case_speed(args)
    if args.only in (None, "threads"):
        case_threads(args)
    if args.only in (None, "equivalence"):
        case_equivalence(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
