from .process import keep_freed_memory  # noqa: F401  (moved to textrnn.process; this shim goes at merge)
