"""The `leadtime` command line. Each subcommand lives in its own module and registers itself."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from autoscaler import __version__
from autoscaler.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    from leadtime.backtest import add_backtest_command
    from leadtime.backtest_corpus_cmd import run_backtest_corpus
    from leadtime.config_cmd import add_config_command
    from leadtime.run import add_run_command
    from leadtime.simulate import add_bench_command, add_simulate_command
    from leadtime.traces import add_trace_info_command

    parser = argparse.ArgumentParser(
        prog="leadtime",
        description="Predictive autoscaler for serverless GPU inference: "
        "scale one cold start ahead of demand.",
    )
    parser.add_argument("--version", action="version", version=f"leadtime {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run_command(commands)
    add_simulate_command(commands)
    add_bench_command(commands)
    add_trace_info_command(commands)
    add_backtest_command(commands, corpus=run_backtest_corpus)
    add_config_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input is one line on stderr and exit status 2."""
    return run_command(build_parser(), argv)


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv` and run the `handler` it sets: bad input is one line on stderr (named by
    the parser's program) and exit status 2, Ctrl-C status 130. The load test's own command
    line (`python -m load_tests.loadtest`) runs the same way."""
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except InputError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
