"""How faithful the simulator is: `leadtime simulate` and `python -m load_tests.loadtest` (real
processes, real Prometheus) on the same windows, side by side, as the README's fidelity table.

    python load_tests/fidelity.py                      # every case at speeds 1 and 10 (~50 min)
    python load_tests/fidelity.py --case nasa          # the cases whose name contains "nasa"
    python load_tests/fidelity.py --speeds 10          # only the replays at 10x

Each row runs both commands with the same arguments (the harness with `--speed` besides) and
prints the SLO attainment and the GPU-seconds of each, their difference, and whether it is
inside the issue's bar (5 points of SLO attainment, 25 % of GPU-seconds). Both score the same
way: the same SLO rule and the same warm-up (the default, 10 % of the window, unless a case
sets one; a row whose two sides report different warm-ups is refused). At speed X the harness
takes 1/X of the window's time (plus ~15 s to start and stop its processes); run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
TRACES = CHECKOUT.parent / "shared" / "data" / "traces"
SLO_BAR_POINTS = 5.0
GPU_BAR = 0.25


@dataclass(frozen=True)
class Case:
    name: str
    source: tuple[str, ...]
    """`--trace FILE` or `--workload NAME`, with the window."""
    policy: str
    cold_start: str = "20s"
    warmup: str | None = None
    """`--warmup` for both commands; None: their common default."""


def _trace(file: str, offset: str, duration: str) -> tuple[str, ...]:
    return ("--trace", str(TRACES / file), "--offset", offset, "--duration", duration)


AZURE = _trace("AzureLLMInferenceTrace_code.csv", "10m", "5m")
NASA = _trace("nasa_http_1995_per_second_workload.tbz2", "10m", "5m")
BURSTY = ("--workload", "llm-bursty", "--duration", "2m")
CASES = [
    Case(
        "llm-bursty static:10 (1 min)",
        ("--workload", "llm-bursty", "--duration", "1m"),
        "static:10",
    ),
    *(Case(f"llm-bursty {policy}", BURSTY, policy) for policy in ("kpa", "hpa", "leadtime")),
    *(Case(f"azure-code {policy}", AZURE, policy) for policy in ("kpa", "hpa", "leadtime")),
    *(Case(f"nasa {policy}", NASA, policy) for policy in ("kpa", "hpa", "leadtime")),
]


SPEEDS = (1.0, 10.0)


def run(command: str, case: Case, *extra: str) -> dict:
    program = ["load_tests.loadtest"] if command == "loadtest" else ["leadtime", command]
    argv = [
        sys.executable,
        "-m",
        *program,
        *case.source,
        "--policy",
        case.policy,
        "--cold-start",
        case.cold_start,
        *([] if case.warmup is None else ["--warmup", case.warmup]),
        *extra,
        "--json",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=CHECKOUT)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    return result[0] if isinstance(result, list) else result


def compare(case: Case, speed: float) -> str:
    """One row: the simulator and the harness at `speed` on the same case and warm-up."""
    sim = run("simulate", case)
    harness = run("loadtest", case, "--speed", f"{speed:g}")
    if sim["warmup_s"] != harness["warmup_s"]:
        raise SystemExit(
            f"{case.name}: warm-ups differ (simulator {sim['warmup_s']}s, "
            f"harness {harness['warmup_s']}s): the two would not score the same requests"
        )
    return row(case, speed, sim, harness)


def row(case: Case, speed: float, sim: dict, harness: dict) -> str:
    slo_delta = 100 * (harness["slo_attainment"] - sim["slo_attainment"])
    gpu_delta = harness["gpu_seconds"] / sim["gpu_seconds"] - 1 if sim["gpu_seconds"] else 0.0
    inside = abs(slo_delta) <= SLO_BAR_POINTS and abs(gpu_delta) <= GPU_BAR
    return (
        f"| {case.name} | {speed:g} | {sim['requests']} | {100 * sim['slo_attainment']:.1f} % "
        f"| {100 * harness['slo_attainment']:.1f} % | {slo_delta:+.1f} "
        f"| {sim['gpu_seconds']:.0f} | {harness['gpu_seconds']:.0f} | {100 * gpu_delta:+.0f} % "
        f"| {'yes' if inside else '**no**'} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="", help="only the cases whose name contains this")
    parser.add_argument(
        "--speeds",
        default=",".join(f"{speed:g}" for speed in SPEEDS),
        help="the harness's replay speeds, comma-separated (default %(default)s)",
    )
    args = parser.parse_args()
    speeds = [float(speed) for speed in args.speeds.split(",")]
    cases = [case for case in CASES if args.case in case.name]
    if not cases:
        raise SystemExit(
            f"--case: no case matches {args.case!r}; cases: "
            + ", ".join(case.name for case in CASES)
        )
    print(
        "| window, policy | speed | requests | SLO sim | SLO harness | Δ points | GPU-s sim "
        "| GPU-s harness | Δ | inside the bar |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        for speed in speeds:
            print(compare(case, speed), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
