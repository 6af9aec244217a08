"""A web page and HTTP API classifying a person's own songs (``progrock serve RUN_DIR``).

:func:`create_app` builds the FastAPI app; the page lives in ``static/`` and
calls the same :func:`progrock.predict.classify_file` as the command line.
"""

from progrock.serve.app import create_app

__all__ = ["create_app"]
