"""An open-loop load generator: requests leave at the workload's times (divided by `speed`)
whether or not earlier ones were answered — users do not wait for each other — each an
OpenAI-style streaming completion. Every request's TTFT (first streamed byte) and latency are
recorded, in the workload's own time (multiplied back by `speed`)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import aiohttp
import numpy as np


@dataclass
class Outcomes:
    """Per request, in workload seconds: NaN where it never got a first token / an end."""

    arrival: np.ndarray
    ttft: np.ndarray
    latency: np.ndarray
    status: np.ndarray
    """HTTP status, or 0 for a connection error or timeout."""

    @property
    def served(self) -> np.ndarray:
        return (self.status == 200) & np.isfinite(self.latency)


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    host: str | None,
    prompt: int,
    output: int,
    index: int,
    out: Outcomes,
    speed: float,
    timeout_s: float,
) -> None:
    body = {
        "model": "default",
        "prompt": "Write a function that",
        "prompt_tokens": prompt,
        "max_tokens": output,
        "stream": True,
    }
    started = time.perf_counter()
    try:
        async with session.post(
            url + "/v1/completions",
            json=body,
            headers={"Host": host} if host else {},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            out.status[index] = response.status
            if response.status != 200:
                return
            async for _ in response.content.iter_any():
                if math.isnan(out.ttft[index]):
                    out.ttft[index] = (time.perf_counter() - started) * speed
            out.latency[index] = (time.perf_counter() - started) * speed
    except (TimeoutError, aiohttp.ClientError):
        out.status[index] = 0


async def replay(
    url: str,
    times: np.ndarray,
    prompts: np.ndarray,
    outputs: np.ndarray,
    *,
    speed: float = 1.0,
    host: str | None = None,
    timeout_s: float = 600.0,
    start_at: float | None = None,
) -> Outcomes:
    """`start_at` (Unix time) is when the workload's second 0 is, so that a caller can tick
    its policy in step with the workload, as the simulator does; by default: now."""
    n = int(times.size)
    out = Outcomes(
        np.asarray(times, dtype=float),
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.zeros(n, dtype=np.int64),
    )
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start, tasks = time.monotonic(), []
        if start_at is not None:
            start += max(0.0, start_at - time.time())
        for index in range(n):
            delay = start + float(times[index]) / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(
                    _one(
                        session,
                        url.rstrip("/"),
                        host,
                        int(prompts[index]),
                        int(outputs[index]),
                        index,
                        out,
                        speed,
                        timeout_s,
                    )
                )
            )
        await asyncio.gather(*tasks)
    return out


def main() -> None:
    """`python -m load_tests.local.loadgen URL IN.npz OUT.npz SPEED [START_AT]`: replay in a
    process of its own, so the generator's event loop never shares time with the balancer's."""
    import sys

    url, source, target, speed = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    start_at = float(sys.argv[5]) if len(sys.argv) > 5 else None
    with np.load(source) as data:
        times, prompts, outputs = data["times"], data["prompts"], data["outputs"]
    out = asyncio.run(replay(url, times, prompts, outputs, speed=speed, start_at=start_at))
    np.savez(target, arrival=out.arrival, ttft=out.ttft, latency=out.latency, status=out.status)


async def replay_in_process(
    url: str,
    times: np.ndarray,
    prompts: np.ndarray,
    outputs: np.ndarray,
    *,
    speed: float,
    folder: str,
    start_at: float | None = None,
) -> Outcomes:
    """`replay`, run by `main` in a separate Python process."""
    import sys
    from pathlib import Path

    source, target = Path(folder) / "requests.npz", Path(folder) / "outcomes.npz"
    np.savez(source, times=times, prompts=prompts, outputs=outputs)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "load_tests.local.loadgen",
        url,
        str(source),
        str(target),
        str(speed),
        *([] if start_at is None else [repr(start_at)]),
    )
    try:
        if await process.wait() != 0:
            raise RuntimeError(f"load generator exited with {process.returncode}")
    finally:
        if process.returncode is None:  # cancelled (SIGTERM, Ctrl-C): no orphaned generator
            process.terminate()
            await asyncio.shield(process.wait())
    with np.load(target) as data:
        return Outcomes(data["arrival"], data["ttft"], data["latency"], data["status"])


if __name__ == "__main__":
    main()
