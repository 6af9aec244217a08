"""progrock: tell progressive rock from everything else, from the audio alone.

The data flow follows the package layout (audio → features → snippets → model
→ song verdict → report)::

    audio/       decode any file, block by block, to mono float32 at 22,050 Hz
    features/    the feature registry (seed43, logmel, musicnn): per-frame matrices
                 [n_features, n_frames], their cache, song summaries, structure
    data/        manifests (songs, labels, splits) and snippets
    model/       the seed's 1D-CNN and its backends, classical models, the
                 familiarity check, a run's models (safetensors + JSON)
    training/    the CNN's training loop; fit_run trains every model of a run
    evaluation/  the vote rule and the per-song result, metrics, intervals
    report/      barcodes, figures, the HTML report, the verdict table
    serve/       the web page and HTTP API
    parallel/    where per-song work runs: worker processes or a Dask cluster
    corpus/      the synthetic demo corpus generator
    cli/         the ``progrock`` command

and the modules beside them: ``predict`` (array → file → files), ``workflow``
(train, evaluate, the demo), ``cv`` (cross-validation), ``paths``, ``atomic``,
``config``, ``constants``, ``errors`` (:class:`ProgrockError`, the root of
every error progrock raises). "The seed" is the course project progrock
started from (its network, its 43 features); a random seed is always
``seed=``/``--seed``.
"""

from progrock.errors import ProgrockError

__version__ = "0.1.0"

__all__ = ["ProgrockError", "__version__"]
