"""How the worker sets CPython's cyclic garbage collector: once, after start-up.

A tick of a thousand runs has some 40,000 objects alive at once (tasks, coroutines, contexts,
records) for the tens of milliseconds it takes to start and end them. With CPython's default
the youngest generation is collected every 700 objects allocated net, that is in the middle
of every such tick, many times: each collection walks every run in flight and promotes the
survivors to the older generations, which are then walked too, and now and then a full
collection walks everything the process holds. On the benchmark machine that was a large part
of the worker's CPU per run, and full collections paused the loop in the middle of a tick,
which went straight into start lateness; the figures are in
`benchmarks/README.md#what-the-shortcuts-save`.

Nearly all of a run's objects are freed by reference counting the moment the run ends; the
collector is there for reference cycles, which are rare here (an exception kept with its
traceback). So the worker collects the youngest generation only every `YOUNG_THRESHOLD`
objects allocated net (which a tick of a few thousand runs reaches once or not at all, and
which bounds the cyclic garbage kept waiting to a few megabytes), and freezes what start-up
allocated (modules, settings, the registry, clients: all kept for the life of the process), so
that full collections do not walk it again and again.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune_collector(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze what is alive now and collect the youngest generation every `young_threshold`
    objects allocated net (the older generations keep their thresholds)."""
    if young_threshold < 1:
        raise ValueError(f"young generation threshold {young_threshold}: expected >= 1")
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
