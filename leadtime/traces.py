"""`leadtime trace-info`: the statistics of a trace or a built-in workload.

The synthetic workloads are calibrated against the public traces' statistics; this command
prints both, so every figure quoted in the docs can be reproduced.
"""

from __future__ import annotations

import argparse
import json
import sys

from adapters.simulator.synthetic import describe
from leadtime.options import add_workload_options, workload_from_args


def add_trace_info_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("trace-info", help="print a workload's rate and token statistics")
    add_workload_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run_trace_info)


def run_trace_info(args: argparse.Namespace) -> int:
    workload = workload_from_args(args)
    stats = {"trace": workload.source or workload.name, **describe(workload)}
    if args.json:
        json.dump(stats, sys.stdout)
        sys.stdout.write("\n")
        return 0
    width = max(len(key) for key in stats)
    for key, value in stats.items():
        shown = f"{value:,.4g}" if isinstance(value, float) else str(value)
        print(f"{key.ljust(width)}  {shown}")
    return 0
