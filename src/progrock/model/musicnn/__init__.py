"""musicnn's MSD tagger (Pons & Serra 2019, ISC licence) in PyTorch, with converted weights.

* :mod:`.preprocess` — audio -> musicnn's log-mel -> 3-s patches (pure functions);
* :mod:`.network` — :class:`MusicnnMSD`, :data:`TAGS`, :data:`PROG_TAG`, :func:`load_musicnn`;
* :mod:`.tagger` — :func:`song_tags_and_embeddings` and the block-by-block :class:`MusicnnStream`;
* :mod:`.convert` and :mod:`.tfbundle` — the weights from musicnn's wheel, TensorFlow not needed.

``tests/test_musicnn.py`` proves the outputs equal the original's (TensorFlow,
``tools/musicnn_reference.py``) on the same input and on real recordings.
"""

from progrock.model.musicnn.network import PROG_TAG, TAGS, MusicnnMSD, MusicnnOutput, load_musicnn
from progrock.model.musicnn.preprocess import log_mel, patches
from progrock.model.musicnn.tagger import MusicnnStream, SongTags, song_tags_and_embeddings

__all__ = ["PROG_TAG", "TAGS", "MusicnnMSD", "MusicnnOutput", "MusicnnStream", "SongTags", "load_musicnn",
           "log_mel", "patches", "song_tags_and_embeddings"]
