"""The garbage collector at scale: set the start-up heap aside so that a full collection does not stall every thread.

CPython's cyclic collector runs a full (generation 2) collection once the long-lived objects have grown by a quarter
since the last one, and it walks every tracked object while holding the GIL: with 50,000 instance actors that took
185 ms - 1.2 s (bench.scale, ``gc_full_ms``), during which no report is applied and no crash is noticed. Almost all
of those objects are made at start-up and live as long as the control plane: ``gc.freeze()`` moves them to the
permanent generation, which collections skip (0.5 ms for the same full collection after it).

What it costs: a frozen object that later becomes garbage in a reference cycle is never collected. An instance actor
is such a cycle (actor, ref, workload, host), so each instance that was there at start-up and is deregistered later
leaves its actor behind: about 2 KiB each (bench.scale's RSS per instance). Objects freed by their reference count
(records replaced by newer ones, messages) are freed as before, frozen or not.
"""

from __future__ import annotations

import gc

# The thresholds stay CPython's: a young collection scans only the young objects (well under a millisecond), and what
# made the pauses was the full collection walking the start-up heap, which the freeze takes out of it. Instances
# created after start-up (auto-created by pushes) are not frozen; a later settle_after_start would freeze them too.


def settle_after_start() -> int:
    """Collect what start-up left as garbage, then freeze the rest; the number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
