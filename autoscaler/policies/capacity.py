"""What one replica can carry, in the unit the policy provisions in: configured, and learned.

The configured per-replica target (Knative's `target` / containerConcurrency) is often wrong for
GPU inference: a Knative Service left at `containerConcurrency: 0` gets a target of 70 requests
in flight per pod, while a vLLM replica saturates at its batch size (`max_num_seqs`, say 8) and
queues the rest. Saturation shows in the metrics: while requests are queued in front of the
service, every ready replica is full, so requests in service per ready replica is the replica's
real number of slots. Leadtime learns it online and provisions against it when it is clearly
below the configured target: the rule is `leadtime_rows.learned_slots` and `usable_slots`, on
arrays; these are its constants.
"""

from __future__ import annotations

SATURATION_WINDOW_S = 4
"""Seconds of the newest samples read: short, so the current ready count still applies."""
SATURATION_QUEUE = 0.5
"""A second counts as saturated when more than this many requests waited on average."""
SMOOTHING = 0.2
"""Weight of a new saturation sample in the running estimate."""
TOLERANCE = 0.75
"""The learned capacity replaces the configured target only below this fraction of it: a
per-second average over a second that was only partly saturated reads a little low, and a
configured target that is right should not drift with that noise."""
