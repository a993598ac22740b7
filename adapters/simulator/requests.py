"""Turn a workload's arrivals into requests with token counts and service times.

Service time follows the usual model of an LLM replica: prefill per prompt token, then decode
per output token; time to first token is queue wait + prefill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adapters.simulator.config import SimConfig
from adapters.simulator.workload import Workload

MAX_PROMPT_TOKENS = 131_072
MAX_OUTPUT_TOKENS = 16_384


@dataclass(frozen=True, eq=False)
class Requests:
    """Per-request arrays, index-aligned with the workload's arrivals."""

    arrival: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    prefill: np.ndarray
    service: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival.shape[0])


def build_requests(workload: Workload, config: SimConfig) -> Requests:
    """Attach tokens (the trace's, or seeded draws) and service times to every arrival."""
    if workload.prompt_tokens is not None and workload.output_tokens is not None:
        prompt = np.clip(workload.prompt_tokens, 1, MAX_PROMPT_TOKENS).astype(np.int64)
        output = np.clip(workload.output_tokens, 1, MAX_OUTPUT_TOKENS).astype(np.int64)
    else:
        prompt, output = _draw_tokens(len(workload), config)
    prefill = prompt * config.prefill_s_per_token
    service = prefill + output * config.decode_s_per_token
    return Requests(workload.times, prompt, output, prefill, service)


def _draw_tokens(n: int, config: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([config.seed, 0x70C3])
    sigma = config.default_token_sigma
    prompt = np.rint(config.default_prompt_median * np.exp(sigma * rng.standard_normal(n)))
    output = np.rint(config.default_output_median * np.exp(sigma * rng.standard_normal(n)))
    return (
        np.clip(prompt, 1, MAX_PROMPT_TOKENS).astype(np.int64),
        np.clip(output, 1, MAX_OUTPUT_TOKENS).astype(np.int64),
    )
