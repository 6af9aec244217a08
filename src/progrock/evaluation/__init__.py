"""Song verdicts from snippets, metrics, threshold choice and their plots."""

from progrock.evaluation.metrics import binary_metrics, choose_threshold, format_confusion
from progrock.evaluation.verdict import RULES, SongVerdict, song_verdict, song_verdicts, song_vote_scores

__all__ = [
    "RULES", "SongVerdict", "binary_metrics", "choose_threshold", "format_confusion",
    "song_verdict", "song_verdicts", "song_vote_scores",
]
