"""Heavy imports without the garbage collector's passes over them.

Importing pandas and SQLAlchemy (a run), or Great Expectations (the validity worker), makes a
few hundred thousand objects that live as long as the process. The cyclic collector walks them
again and again while they are made, and later in every full pass: 0.1-0.2 s of CPU per process,
for next to nothing collected. Made with the collector paused and then frozen (`gc.freeze`), they
are left out of every later pass. What the imports leave as garbage (a few megabytes) is kept.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def heavy_imports() -> Iterator[None]:
    """Run the block with the collector paused, then freeze every object alive at its end."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
