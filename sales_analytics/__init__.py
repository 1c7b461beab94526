"""Sales Analytics: the Django project package (settings, URLs, API, shared helpers)."""

import os

# Polars allocates through its own jemalloc, which by default keeps freed pages for 10 s. An
# upload frees hundreds of megabytes of batches right before publishing asks DuckDB for its
# share, so the worker held both at once; returning free pages after 1 s (by a background
# thread, off the hot path) keeps its peak under 1 GB at a cost of about 2 %. Set before Polars
# loads (this package is imported first by manage.py and the WSGI app); an explicit setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0")
