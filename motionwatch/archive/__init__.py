"""`motionwatch scan` over an archive: many files, long files split at keyframes,
on local worker processes or a Dask cluster, remembered in the index so a scan
can be resumed and repeated without doubling events (docs/scanning.md)."""
