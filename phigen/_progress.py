"""Progress messages of the long verbs (compare, generalisation, quickstart)."""

from __future__ import annotations

import sys


def say(progress, msg: str) -> None:
    """``progress`` callable: call it with ``msg``; truthy: print ``msg`` on stderr; falsy: nothing."""
    if callable(progress):
        progress(msg)
    elif progress:
        print(msg, file=sys.stderr, flush=True)
