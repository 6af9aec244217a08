"""The synthetic demo corpus: prog and nonprog songs rendered from musical plans.

Layers, array to folder::

    music.py        meters, drum patterns, scales, chords, progressions
    instruments.py  numpy voices: drum kit, bass, guitars, voice, organ, strings, flute, synths
    song.py         plan_song (the musical ground truth) and synthesize_song (plan -> audio)
    generate.py     generate_corpus: prog/ and nonprog/ folders plus corpus.json
    measure.py      cue_separability and audio_baseline: how hard the corpus is

See ``docs/corpus.md`` for the musical contract and the measured separability.
"""

from progrock.corpus.generate import DEFAULT_FORMATS, generate_corpus, plan_corpus, remove_corpus
from progrock.corpus.measure import audio_baseline, cue_separability
from progrock.corpus.song import Section, SongPlan, normalize_loudness, plan_song, synthesize_song

__all__ = ["DEFAULT_FORMATS", "Section", "SongPlan", "audio_baseline", "cue_separability",
           "generate_corpus", "normalize_loudness", "plan_corpus", "plan_song", "remove_corpus",
           "synthesize_song"]
