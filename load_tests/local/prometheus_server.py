"""A real Prometheus (Debian's `prometheus` package) on a free loopback port with a temporary
data directory, scraping every second: fixed targets plus a file of targets that the replica
manager rewrites as replicas come and go (file-based service discovery). The fixed targets can
be scraped faster (`static_scrape_interval`): a load test replayed X times faster scrapes its
balancer every 1/X s, so that Prometheus keeps one sample per second of the trace."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from load_tests.local.replicas import free_port


class PrometheusNotAvailable(RuntimeError):
    """No prometheus binary, or it did not become ready (the message says which)."""


class PrometheusProcess:
    def __init__(
        self,
        static_targets: list[str],
        *,
        scrape_interval: str = "1s",
        static_scrape_interval: str | None = None,
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusNotAvailable(
                "prometheus not found: apt-get install prometheus (Debian's package)"
            )
        self.binary = binary
        self.folder = Path(tempfile.mkdtemp(prefix="leadtime-prometheus-"))
        self.targets_file = self.folder / "replicas.json"
        self.set_file_targets([])
        self.config = self.folder / "prometheus.yml"
        self.config.write_text(
            f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: static\n"
            f"{_interval(static_scrape_interval)}"
            f"    static_configs:\n      - targets: {json.dumps(static_targets)}\n"
            "  - job_name: replicas\n"
            f"    file_sd_configs:\n      - files: ['{self.targets_file}']\n"
            "        refresh_interval: 1s\n"
        )
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_file_targets(self, targets: list[str]) -> None:
        """Replace the discovered targets (written atomically, as file_sd expects)."""
        temporary = self.targets_file.with_suffix(".tmp")
        temporary.write_text(json.dumps([{"targets": targets, "labels": {}}]))
        temporary.replace(self.targets_file)

    def start(self, timeout_s: float = 30.0) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise PrometheusNotAvailable(f"prometheus on {self.url} not ready after {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _interval(every: str | None) -> str:
    """A job's own scrape interval (and timeout: Prometheus refuses a timeout longer than the
    interval), or nothing for the global one."""
    if every is None:
        return ""
    return f"    scrape_interval: {every}\n    scrape_timeout: {every}\n"
