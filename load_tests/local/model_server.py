"""A fake GPU inference server that behaves like an LLM server (and like the simulator's
replica, so the two can be compared): `slots` concurrent sequences, prefill time from the
prompt's tokens, one streamed token per decode step, a cold start (model load) before it
reports ready, vLLM's `/metrics` names and an OpenAI-style streaming `/v1/completions`.

    python -m load_tests.local.model_server --port 9001 --cold-start 60 --slots 8

`--time-scale X` divides every duration (prefill, decode, cold start) by X, for load tests
that replay traces faster than real time. Tokens due less than `MIN_WRITE_GAP_S` apart are then
streamed together: at 10x a token is due every 2.5 ms, and one write per token through the
balancer costs more CPU than two cores have for a busy window, which delayed every stream and
lengthened requests. The first token and the last still go out at their own deadlines, so TTFT
and latency are as timed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time

from aiohttp import web

from adapters.simulator.config import SimConfig

DEFAULTS = SimConfig()
MIN_WRITE_GAP_S = 0.02
"""Wall seconds between two writes of a stream at least (tokens due in between go together)."""
TOKEN = b'data: {"choices":[{"text":"x"}]}\n\n'


class ModelServer:
    def __init__(
        self,
        *,
        slots: int = DEFAULTS.max_concurrency,
        cold_start_s: float = 60.0,
        prefill_s_per_token: float = DEFAULTS.prefill_s_per_token,
        decode_s_per_token: float = DEFAULTS.decode_s_per_token,
        time_scale: float = 1.0,
        ready_at: float | None = None,
    ) -> None:
        self.slots = slots
        self.semaphore = asyncio.Semaphore(slots)
        self.cold_start_s = cold_start_s / time_scale
        self.prefill_s = prefill_s_per_token / time_scale
        self.decode_s = decode_s_per_token / time_scale
        self.ready_at = ready_at if ready_at is not None else time.time() + self.cold_start_s
        """Wall-clock time the model is loaded: given by the launcher, the cold start counts
        from the launch (process start-up included), as a pod's counts from its creation."""
        self.running = self.waiting = 0
        self.prompt_tokens = self.generation_tokens = self.successes = 0

    @property
    def ready(self) -> bool:
        return time.time() >= self.ready_at

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/completions", self._completions)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.Response(status=503, text="loading model")
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        lines = [
            f"vllm:num_requests_running {self.running}",
            f"vllm:num_requests_waiting {self.waiting}",
            f"vllm:gpu_cache_usage_perc {self.running / self.slots}",
            f"vllm:prompt_tokens_total {self.prompt_tokens}",
            f"vllm:generation_tokens_total {self.generation_tokens}",
            f"vllm:request_success_total {self.successes}",
        ]
        return web.Response(
            text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8"
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if not self.ready:
            return web.json_response({"error": "model loading"}, status=503)
        try:
            body = await request.json()
            prompt = max(
                1, int(body.get("prompt_tokens") or len(str(body.get("prompt", "")).split()))
            )
            output = max(1, int(body.get("max_tokens", 16)))
        except (ValueError, TypeError, json.JSONDecodeError):
            return web.json_response(
                {"error": "expected JSON with prompt and max_tokens"}, status=400
            )
        self.waiting += 1
        async with self.semaphore:
            self.waiting -= 1
            self.running += 1
            try:
                return await self._stream(request, prompt, output)
            finally:
                self.running -= 1

    async def _stream(self, request: web.Request, prompt: int, output: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        # Each token at its own deadline from the start, so event-loop overheads do not add up
        # over a long answer (sleeping 25 ms per token drifts ~4 % slower than the model).
        clock = asyncio.get_running_loop().time
        first = clock() + prompt * self.prefill_s
        await asyncio.sleep(first - clock())  # prefill, then the first token
        await response.prepare(request)
        self.prompt_tokens += prompt
        sent = 0
        while sent < output:
            due = token_batch(clock() - first, self.decode_s, sent, output)
            if due > sent:
                await response.write(TOKEN * (due - sent))
                self.generation_tokens += due - sent
                sent = due
            if sent < output:
                await asyncio.sleep(next_write(clock() - first, self.decode_s, sent, output))
        await response.write(b"data: [DONE]\n\n")
        self.successes += 1
        return response


def token_batch(elapsed: float, decode_s: float, sent: int, output: int) -> int:
    """How many tokens are due `elapsed` seconds after the first (token i is due at
    i × decode_s), never fewer than `sent` + 1 (the loop writes when it wakes)."""
    due = math.floor(elapsed / decode_s + 1e-9) + 1 if decode_s > 0 else output
    return min(output, max(sent + 1, due))


def next_write(elapsed: float, decode_s: float, sent: int, output: int) -> float:
    """Seconds to sleep before the next write: until the next token is due, but at least
    MIN_WRITE_GAP_S, and never past the last token's deadline."""
    next_due = sent * decode_s - elapsed
    last_due = (output - 1) * decode_s - elapsed
    return max(0.0, min(max(next_due, MIN_WRITE_GAP_S), last_due))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slots", type=int, default=DEFAULTS.max_concurrency)
    parser.add_argument("--cold-start", type=float, default=60.0, help="seconds to load")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument(
        "--ready-at",
        type=float,
        help="Unix time the model is loaded (instead of --cold-start from now)",
    )
    args = parser.parse_args()
    server = ModelServer(
        slots=args.slots,
        cold_start_s=args.cold_start,
        time_scale=args.time_scale,
        ready_at=args.ready_at,
    )
    web.run_app(server.app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
