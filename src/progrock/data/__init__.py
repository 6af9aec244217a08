"""Datasets: manifests with song-level splits, and snippets cut from feature matrices."""

from progrock.data.manifest import Manifest, Song, read_manifest, scan
from progrock.data.snippets import SnippetConfig, SnippetSet, cut_snippets, song_snippets

__all__ = ["Manifest", "SnippetConfig", "SnippetSet", "Song", "cut_snippets", "read_manifest",
           "scan", "song_snippets"]
