"""What a long-running process (API worker, Celery pool process) does once it has started."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Take everything loaded so far (modules, routes, mappers, adapters) out of the garbage
    collector's sight. A full collection of a loaded process walks some 130,000 objects and
    stops it for tens of milliseconds (76 ms measured on the API); frozen, the collector walks
    only what requests and tasks left behind. Frozen objects are never freed, which is right
    for what lives as long as the process."""
    gc.collect()
    gc.freeze()
