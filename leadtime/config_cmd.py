"""`leadtime config check FILE`, `leadtime config show [FILE]` and `leadtime config schema`.

Why: a bad config stops the service at start. `check` finds the same one-line error without
starting anything (in CI, before a deploy); `show` prints what the service would run with once
the `LEADTIME_*` variables are applied, which is what to look at when a setting seems ignored.
Both read the process environment, as the service does. `schema` prints the rules as JSON
Schema, for an editor to check a config file as it is written.
"""

from __future__ import annotations

import argparse
import os
import sys

from autoscaler.durations import format_duration


def add_config_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("config", help="check or show the service's configuration")
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate FILE (with the LEADTIME_* variables) and summarise it"
    )
    check.add_argument("file", metavar="FILE", help="the YAML config file")
    show = actions.add_parser(
        "show", help="print the effective configuration (after LEADTIME_* variables) as YAML"
    )
    show.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        help="the YAML config file (default: $LEADTIME_CONFIG, else the built-in defaults)",
    )
    show.add_argument("--show-secrets", action="store_true", help="print http.token as well")
    actions.add_parser(
        "schema",
        help="print the config file's JSON Schema (for an editor's YAML language server)",
    )
    parser.set_defaults(handler=run_config, config_usage=parser.format_usage())


def run_config(args: argparse.Namespace) -> int:
    if args.config_action == "check":
        return run_check(args)
    if args.config_action == "show":
        return run_show(args)
    if args.config_action == "schema":
        return run_schema()
    sys.stderr.write(args.config_usage)
    return 2


def run_check(args: argparse.Namespace) -> int:
    # Imported when run, so that building the parser (every command) loads neither PyYAML nor
    # the policies.
    from autoscaler.config import load_config, override_variables

    config = load_config(args.file)
    services = len(config.services)
    print(f"{args.file}: ok")
    print(f"  mode {config.mode}, tick {format_duration(config.tick_s)}")
    print(f"  {services} service override{'' if services == 1 else 's'}")
    if config.embedded:
        runs = ", ".join((*config.simulator.workloads, *config.simulator.traces))
        print(f"  embedded: yes (no prometheus.url; simulates {runs})")
    else:
        print(f"  embedded: no (metrics from {config.prometheus.url})")
    variables = override_variables()
    if variables:
        print(f"  environment overrides: {', '.join(variables)}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    import yaml

    from autoscaler.config import CONFIG_FILE_VARIABLE, config_to_mapping, load_config

    path = args.file or os.environ.get(CONFIG_FILE_VARIABLE) or None
    config = load_config(path)
    data = config_to_mapping(config, reveal_secrets=args.show_secrets)
    print(f"# effective configuration: {path or 'built-in defaults'} + LEADTIME_* variables")
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    if config.http.token is not None and config.http.token_file is None and not args.show_secrets:
        print("# http.token is set but not shown (--show-secrets prints it)")
    return 0


def run_schema() -> int:
    import json

    import adapters.simulator.synthetic  # noqa: F401  (registers the workload names)
    from autoscaler.config.reference import json_schema

    schema, definitions = json_schema()
    document = {"$schema": "http://json-schema.org/draft-07/schema#", **schema}
    print(json.dumps({**document, "definitions": definitions}, indent=2, ensure_ascii=False))
    return 0
