"""Datasets: manifests with song-level splits (:mod:`.manifest`), snippets (:mod:`.snippets`) and the
features of a manifest's songs (:mod:`.dataset`)."""
