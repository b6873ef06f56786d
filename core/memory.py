"""A gridrecon process's memory, as the kernel provides it (the CLI asks at start)."""

from __future__ import annotations

import sys

_PR_SET_THP_DISABLE = 41  # from linux/prctl.h


def decline_huge_pages() -> None:
    """Ask Linux not to back this process's memory, nor its children's, with transparent huge
    pages.

    numpy asks the kernel for huge pages for its large arrays, and where they are granted the
    kernel clears 2 MB at each first touch. A run's arrays are large and short-lived, made and
    freed again and again, so that clearing cost more than the huge pages saved: a province's
    full run spent a seventh of its CPU clearing them. Declined, the run took 5.1 s instead of
    5.6 s (medians of six runs each, alternating), its system CPU halved and its peak memory
    was a little lower (see Performance in the README).

    Elsewhere than on Linux, or where the kernel refuses (older than 3.15), nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no C library to ask, or no prctl in it
        pass
