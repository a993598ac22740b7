"""An async client for Prometheus' HTTP API (`/api/v1/query`, `/api/v1/query_range`).

Every way a Prometheus answer can be wrong — connection refused, timeout, 5xx, a body that is
not JSON, `"status": "error"`, an unexpected result type, a value that is not a number — is
one `PrometheusError` whose message says which; retries with backoff cover the transient
ones. Tenant headers (Thanos, Cortex, Mimir), bearer tokens, basic auth and TLS options are
the usual ways to reach a managed Prometheus.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp


class PrometheusError(Exception):
    """Prometheus could not answer usefully; the message says why, in a few words."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    time: float
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    times: list[float]
    values: list[float]


@dataclass
class PrometheusClient:
    """Queries one Prometheus (or a compatible API) with retries; reuse one per process."""

    url: str
    timeout_s: float = 5.0
    retries: int = 2
    backoff_s: float = 0.2
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    verify_tls: bool = True
    max_answer_bytes: int = 64 << 20
    """Largest answer read (64 MiB); a larger one is an error, read no further. A tick's
    batched query for 10,000 services is about 2 MB."""
    requests: int = 0
    """HTTP requests made so far (tests check batching with it)."""
    _session: aiohttp.ClientSession | None = None

    async def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query; the result must be a vector."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = await self._get("/api/v1/query", params)
        if data.get("resultType") != "vector":
            raise PrometheusError(f"expected a vector, got {data.get('resultType')!r}")
        return [_sample(item) for item in _results(data)]

    async def query_range(
        self, promql: str, start: float, end: float, step_s: float
    ) -> list[Series]:
        """A range query; the result must be a matrix."""
        params = {
            "query": promql,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step_s:g}",
        }
        data = await self._get("/api/v1/query_range", params)
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"expected a matrix, got {data.get('resultType')!r}")
        return [_series(item) for item in _results(data)]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------------- HTTP
    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        last: PrometheusError | None = None
        for attempt in range(self.retries + 1):
            try:
                return await self._get_once(path, params)
            except PrometheusError as error:
                last = error
                if not getattr(error, "transient", True) or attempt == self.retries:
                    break
                await asyncio.sleep(self.backoff_s * 2**attempt)
        assert last is not None
        raise last

    async def _get_once(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        session = self._open()
        self.requests += 1
        try:
            async with session.get(self.url.rstrip("/") + path, params=params) as response:
                body = await self._bounded_body(response)
                status = response.status
        except TimeoutError as error:
            raise PrometheusError(f"timed out after {self.timeout_s:g}s") from error
        except aiohttp.ClientError as error:
            raise PrometheusError(f"unreachable: {error}") from error
        return _payload(status, body)

    async def _bounded_body(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.max_answer_bytes
        if (response.content_length or 0) > limit:
            raise PrometheusError(
                f"HTTP {response.status}: answer of {response.content_length:,} bytes is over "
                f"the {limit:,} read"
            )
        body = bytearray()
        async for chunk in response.content.iter_chunked(1 << 16):
            body += chunk
            if len(body) > limit:
                raise PrometheusError(
                    f"HTTP {response.status}: answer over the {limit:,} bytes read"
                )
        return bytes(body)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = dict(self.headers)
            if self.bearer_token:
                headers["Authorization"] = f"Bearer {self.bearer_token}"
            auth = aiohttp.BasicAuth(*self.basic_auth) if self.basic_auth else None
            context: ssl.SSLContext | bool = True
            if self.ca_file:
                context = ssl.create_default_context(cafile=self.ca_file)
            elif not self.verify_tls:
                context = False
            self._session = aiohttp.ClientSession(
                headers=headers,
                auth=auth,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(ssl=context),
            )
        return self._session


def _one_line(value: object, limit: int = 300) -> str:
    """A server's words for a message of ours: one line, white space folded, at most `limit`
    characters (an answer may put anything in `error` or `errorType`)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _payload(status: int, body: bytes) -> dict[str, Any]:
    """The `data` of an answer, or why there is none."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:  # nested too deep for the decoder
        problem = PrometheusError(f"HTTP {status}: not JSON ({error})")
        problem.transient = status >= 500  # type: ignore[attr-defined]
        raise problem from error
    if not isinstance(document, dict):
        raise PrometheusError(f"HTTP {status}: expected a JSON object")
    if document.get("status") != "success" or status >= 400:
        why = _one_line(document.get("error") or document.get("status") or "no reason given")
        kind = _one_line(document.get("errorType", "error"))
        problem = PrometheusError(f"HTTP {status}: {kind}: {why}")
        problem.transient = status >= 500 or status == 429  # type: ignore[attr-defined]
        raise problem
    data = document.get("data")
    if not isinstance(data, dict):
        raise PrometheusError("answer without a data object")
    return data


def _results(data: dict[str, Any]) -> list[Any]:
    result = data.get("result")
    if not isinstance(result, list):
        raise PrometheusError("answer without a result list")
    return result


def _sample(item: Any) -> Sample:
    try:
        labels, (time, value) = item["metric"], item["value"]
        return Sample(_labels(labels), float(time), _number(value))
    except (KeyError, TypeError, ValueError, OverflowError) as error:  # Overflow: 1e400 as int
        raise PrometheusError(f"malformed sample {str(item)[:80]!r}") from error


def _series(item: Any) -> Series:
    try:
        labels, values = item["metric"], item["values"]
        return Series(
            _labels(labels), [float(t) for t, _ in values], [_number(v) for _, v in values]
        )
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise PrometheusError(f"malformed series {str(item)[:80]!r}") from error


def _labels(raw: Any) -> dict[str, str]:
    """Label names and values are strings in Prometheus; anything else (a number where a
    namespace belongs) would name a service that does not exist."""
    labels = dict(raw)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise TypeError("label names and values must be strings")
    return labels


def _number(text: Any) -> float:
    """Prometheus writes sample values as strings, including NaN and ±Inf (kept as floats:
    the source decides what a non-finite value means)."""
    return float(text)
