"""libuv's uv_poll_t behind the `exec:` protocol: ``adapter.c`` (the adapter)
and ``build.py`` (compiles it once per source and compiler into the cache)."""
