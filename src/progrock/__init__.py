"""progrock: tell progressive rock from everything else, from the audio alone.

The data flow follows the package layout::

    audio/      decode any file to mono float32 at 22,050 Hz
    features/   per-frame feature matrices [n_features, n_frames], cached
    data/       manifests (songs, labels, splits) and snippets
    model/      the seed's 1D-CNN with noisy voting, saved as safetensors + JSON
    training/   the training loop and its TensorBoard monitoring
    evaluation/ song verdicts, metrics, baselines
    report/     plots and the HTML report
    serve/      the web page and HTTP API
    corpus/     the synthetic demo corpus generator
"""

from progrock.errors import ProgrockError

__version__ = "0.1.0"

__all__ = ["ProgrockError", "__version__"]
