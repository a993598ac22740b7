"""The activator probe Knative's KPA sends before scaling to zero: is the
activator really in front of the revision, so a request arriving at zero is buffered?"""

from __future__ import annotations

import aiohttp

PROBE_HEADERS = {"K-Network-Probe": "activator", "User-Agent": "Knative-Autoscaling-Probe"}
PROBE_BYTES = 64
"""How much of a probe's answer is read (the activator answers `activator`)."""
DEFAULT_URL = "http://{service}.{namespace}.svc.cluster.local:{port}/healthz"
"""{service}: the PA's public service; {port}: 80 for http1, 81 for h2c."""


def probe_url(template: str, service: str, namespace: str, protocol: str) -> str:
    port = 81 if protocol == "h2c" else 80
    return template.format(service=service, namespace=namespace, port=port)


async def activator_answers(
    session: aiohttp.ClientSession, url: str, timeout_s: float = 2.0
) -> tuple[bool, str]:
    """(True, "") when the answer is 200 with body `activator`; else (False, why)."""
    try:
        async with session.get(
            url, headers=PROBE_HEADERS, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            # the answer is one word: read no more than a few bytes of whatever comes
            body = (await response.content.read(PROBE_BYTES)).decode(errors="replace").strip()
            if response.status == 200 and body == "activator":
                return True, ""
            return False, f"probe {url}: status {response.status}, body {body[:40]!r}"
    except (aiohttp.ClientError, TimeoutError) as error:
        return False, f"probe {url}: {error.__class__.__name__} {error}"
