"""`paused_gc()`: no cyclic garbage collection while building big acyclic values.

Rendering 10,000 Services allocates a few hundred thousand small objects; with
the collector on, each generation-2 pass rescans the whole heap (the cluster
state included), which made rendering grow faster than linearly. Nothing built
here has cycles, so pausing the collector loses nothing (the loader does the
same). Re-entrant: only the outermost pause turns it back on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
