"""musicnn's MSD tagger (Pons & Serra 2019, ISC licence) in PyTorch, with converted weights.

* :mod:`.preprocess` — audio -> musicnn's log-mel -> 3-s patches (pure functions);
* :mod:`.network` — :class:`MusicnnMSD`, :data:`TAGS`, :data:`PROG_TAG`, :func:`load_musicnn`;
* :mod:`.tagger` — :func:`song_tags_and_embeddings` and the block-by-block :class:`MusicnnStream`;
* :mod:`.convert` and :mod:`.tfbundle` — the weights from musicnn's wheel, TensorFlow not needed;
* :mod:`.features` — the ``musicnn`` feature set (per 3-s patch: the penultimate embedding and the 50 tags);
* :mod:`.builtin` — the built-in run ``musicnn`` (the "Progressive rock" tag, zero-shot);
* :mod:`.fit` — the musicnn models a trained run holds (zero-shot, and a head on the embeddings).

``tests/test_musicnn.py`` proves the outputs equal the original's (TensorFlow,
``tools/musicnn_reference.py``) on the same input and on real recordings.
"""
