"""Every constant of the virtual GPU inference service, with where its default comes from.

The defaults describe one replica of a 7–8B-parameter LLM served by vLLM on one data-centre GPU
(A100/H100 class, bf16). They are orders of magnitude, not a benchmark of a particular card:
- prefill ≈ 0.15 ms per prompt token (≈ 6,700 prompt tokens/s per replica, a typical compute-
  bound prefill rate for an 8B model on one A100);
- decode ≈ 25 ms per output token per request (≈ 40 tokens/s per stream with a batch of about
  8 concurrent sequences, where decoding is memory-bandwidth bound);
- `max_concurrency` 8 concurrent sequences per replica, the batch at which the decode rate
  above holds; Knative calls this `containerConcurrency`;
- cold start 60 s (pod scheduling, image already cached, ~16 GB of weights loaded and CUDA
  graphs captured), a typical LLM replica, with log-normal jitter σ = 0.1;
- request timeout 600 s, the Knative/KServe default revision timeout order of magnitude;
- SLO: time to first token ≤ 2 s, judged by `autoscaler.slo` (a long prompt on its wait alone);
- warm-up: the first 10 % of the window, at most 1 h, is run but not scored: a deployed
  autoscaler takes over a running service with Prometheus history behind it, so a run starts
  from a running service and its forecasters get the warm-up as history.
Token counts for traces that carry none are drawn log-normally around the chat-like medians
reported for Azure's conversation trace in Splitwise (Patel et al., ISCA 2024): ≈1,020 prompt
and ≈129 output tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from autoscaler.errors import InputError

WARMUP_SHARE = 0.1
"""The default warm-up: this share of the window..."""
WARMUP_MAX_S = 3600.0
"""...and at most an hour of it (a week's window needs no day of warm-up)."""


@dataclass(frozen=True)
class SimConfig:
    """Configuration of one simulation run; validated on construction."""

    cold_start_s: float = 60.0
    """Median time from a replica getting its GPU to being ready."""
    cold_start_sigma: float = 0.1
    """σ of the log-normal jitter on the cold start; draws are clipped to ±3σ."""
    max_concurrency: int = 8
    """Request slots per replica (Knative's containerConcurrency)."""
    prefill_s_per_token: float = 0.00015
    decode_s_per_token: float = 0.025
    request_timeout_s: float = 600.0
    """A request still waiting for a slot after this long is dropped."""
    slo_ttft_s: float = 2.0
    metrics_delay_s: float = 0.0
    """Age of the newest per-second sample a policy sees (0: direct scraping; ~15 s: Prometheus)."""
    gpus_per_replica: int = 1
    gpu_pool: int | None = None
    """GPUs available without provisioning; None = unbounded."""
    node_provisioning_s: float = 180.0
    """With a bounded pool: delay until a new node's GPUs appear when none is free (a cloud GPU
    node's order of magnitude; 0 = off: the replica waits for GPUs to be released)."""
    gpus_per_node: int = 8
    node_idle_s: float = 600.0
    """With a bounded pool: a provisioned node whose GPUs have all been free this long is
    removed (cluster-autoscaler's --scale-down-unneeded-time, default 10 minutes); the
    `gpu_pool` GPUs themselves always stay."""
    default_prompt_median: float = 1020.0
    default_output_median: float = 129.0
    default_token_sigma: float = 1.0
    """σ of the log-normal used for drawn token counts."""
    warmup_s: float | None = None
    """Seconds at the start of each service's window that are run but not scored; None: the
    default share of the window (`warmup_for`); 0: score from a cold start, as before."""
    seed: int = 0

    def __post_init__(self) -> None:
        positive = (
            "cold_start_s",
            "prefill_s_per_token",
            "decode_s_per_token",
            "request_timeout_s",
            "slo_ttft_s",
            "default_prompt_median",
            "default_output_median",
        )
        for name in positive:
            _check(name, getattr(self, name), "a positive number of seconds", lambda v: v > 0)
        for name in (
            "cold_start_sigma",
            "default_token_sigma",
            "metrics_delay_s",
            "node_provisioning_s",
            "node_idle_s",
        ):
            _check(name, getattr(self, name), "a number >= 0", lambda v: v >= 0)
        for name in ("max_concurrency", "gpus_per_replica", "gpus_per_node"):
            _check(
                name,
                getattr(self, name),
                "a whole number >= 1",
                lambda v: isinstance(v, int) and v >= 1,
            )
        if self.warmup_s is not None:
            _check("warmup_s", self.warmup_s, "a number of seconds >= 0", lambda v: v >= 0)
        if self.gpu_pool is not None:
            _check(
                "gpu_pool",
                self.gpu_pool,
                f"a whole number >= gpus_per_replica "
                f"({self.gpus_per_replica}), or unset for an unbounded pool",
                lambda v: isinstance(v, int) and v >= self.gpus_per_replica,
            )

    @property
    def cold_start_bounds(self) -> tuple[float, float]:
        """The shortest and longest cold start a replica can draw (±3σ clip)."""
        spread = math.exp(3 * self.cold_start_sigma)
        return self.cold_start_s / spread, self.cold_start_s * spread

    @property
    def node_wait_s(self) -> float:
        """The longest a replica may wait for a new node before its cold start: one node
        provisioning with a bounded pool, none with an unbounded one."""
        return self.node_provisioning_s if self.gpu_pool is not None else 0.0

    def warmup_for(self, duration: float) -> float:
        """The warm-up of a service whose window lasts `duration` seconds: `warmup_s`, or
        by default WARMUP_SHARE of the window, at most WARMUP_MAX_S."""
        if self.warmup_s is None:
            return min(WARMUP_SHARE * duration, WARMUP_MAX_S)
        if duration > 0 and self.warmup_s >= duration:
            raise InputError(
                f"simulator warmup_s (--warmup): must be shorter than the window "
                f"({duration:g}s), got {self.warmup_s:g}s"
            )
        return self.warmup_s

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_FLAGS = {
    "cold_start_s": "--cold-start",
    "max_concurrency": "--max-concurrency",
    "request_timeout_s": "--timeout",
    "slo_ttft_s": "--slo-ttft",
    "metrics_delay_s": "--metrics-delay",
    "gpus_per_replica": "--gpus-per-replica",
    "gpu_pool": "--gpu-pool",
    "node_provisioning_s": "--node-provisioning",
    "warmup_s": "--warmup",
    "gpus_per_node": "--gpus-per-node",
}


def _check(name: str, value: object, allowed: str, ok) -> None:
    try:
        good = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and ok(value)
        )
    except TypeError:
        good = False
    if not good:
        flag = f" ({_FLAGS[name]})" if name in _FLAGS else ""
        raise InputError(f"simulator {name}{flag}: expected {allowed}, got {value!r}")
