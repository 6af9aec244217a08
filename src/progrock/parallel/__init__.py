"""Where the work runs: worker processes or a Dask cluster, and the allocator settings array work wants.

* :mod:`.engines` maps one per-song function over many files, locally or on Dask;
* :mod:`.dask_plugin` is what every Dask worker runs when it starts;
* :mod:`.malloc` sets glibc's allocator thresholds for array-heavy processes.
"""
