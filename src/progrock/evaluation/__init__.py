"""Song verdicts from snippets (:mod:`.verdict`), metrics (:mod:`.metrics`), intervals (:mod:`.intervals`) and evaluation (:mod:`.evaluate`)."""

from progrock.evaluation.metrics import binary_metrics, choose_threshold, format_confusion
from progrock.evaluation.verdict import RULES, SongResult, song_scores, song_verdict, song_verdicts, song_vote_scores

__all__ = [
    "RULES", "SongResult", "binary_metrics", "choose_threshold", "format_confusion",
    "song_scores", "song_verdict", "song_verdicts", "song_vote_scores",
]
