"""Reading the configuration: a YAML file, `LEADTIME_*` environment overrides and per-service
overrides, validated once, at load, against the settings' declarations (`sections.py`).

Why everything is validated up front: a typo in a key or a value out of range must stop the
service at start with one message naming the key and what is allowed, not show up an hour
later as a service scaled wrong. pydantic walks the data and runs each setting's kind; every
problem becomes one `InputError` whose message starts with where the value came from —
`config http.port`, the file (`leadtime.yaml http.port`) or the environment variable
(`LEADTIME_HTTP__PORT (http.port)`) — and unknown keys are errors at every level, with a "did you
mean".

Precedence, lowest first: the defaults, the file, the environment (`LEADTIME_MODE`,
`LEADTIME_HTTP__PORT`: a double underscore between levels, key names case-insensitive, values
read as YAML scalars, list keys comma-separated), then `services:` — each service's overrides on
top of the (environment-overridden) `policy` defaults.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from autoscaler.config.kinds import REFUSED, Kind, Refused
from autoscaler.config.schema import sections, settings_of, top_level_keys
from autoscaler.config.sections import Config, PolicyConfig
from autoscaler.errors import InputError, SettingError

ENV_PREFIX = "LEADTIME_"
CONFIG_FILE_VARIABLE = "LEADTIME_CONFIG"
"""Names the config file for the CLI; not a config key."""


@functools.cache
def _validator() -> TypeAdapter[Config]:
    return TypeAdapter(Config)


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """The config from the YAML file at `path` (None: the defaults) with the `LEADTIME_*`
    variables of `env` (default: the process environment) applied over it."""
    environment = os.environ if env is None else env
    if path is None:
        return _build({}, "config", environment)
    return _build(_read_yaml(path), path, environment)


def config_from_mapping(data: Mapping[str, Any], *, source: str = "config") -> Config:
    """The config from already-parsed data (no environment); `source` starts every message."""
    return _build(data, source, {})


def policy_with_overrides(
    base: PolicyConfig, overrides: Mapping[str, tuple[str, str]]
) -> tuple[PolicyConfig, dict[str, str]]:
    """`base` with text overrides applied one key at a time (`overrides`: policy key →
    (label, text), as Kubernetes annotations give them). Each text is read as a YAML scalar and
    checked by the same kind as the config file's key. A refused value keeps `base`'s, and its
    message, starting with the label, is returned under that label — so one bad annotation is
    reported and the rest still apply. If the accepted values do not go together (min above
    max), none of them apply and every label gets the message."""
    keys = settings_of(PolicyConfig)
    accepted: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, (label, text) in overrides.items():
        setting = keys[name]
        value = _env_value(text, setting.kind)
        try:
            accepted[setting.attr] = setting.kind.check(value)
        except Refused as refusal:
            problems[label] = _expected(label, *setting.kind.explain(refusal, value))
        except (ValueError, TypeError, OverflowError, RecursionError) as error:
            # untrusted text (an annotation) must never get past this as an exception
            problems[label] = f"{label}: cannot be read ({error.__class__.__name__})"
    try:
        policy = replace(base, **accepted)
    except SettingError as error:
        key = _key_of(PolicyConfig, error.keys[0]) if error.keys else ""
        culprit = overrides.get(key, (key, ""))[0]
        message = f"{culprit}: {error.reason}"
        return base, {label: message for label, _ in overrides.values()}
    return policy, problems


def override_variables(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The variables of `env` (default: the process environment) that override the config."""
    return tuple(variable for variable, _ in _env_overrides(os.environ if env is None else env))


def config_to_mapping(config: Config, *, reveal_secrets: bool = False) -> dict[str, Any]:
    """The config under its YAML names, durations written `60s` or `1h` (`leadtime config
    show`); loading it back gives the same config. `services` lists only what each service
    overrides. `http.token` is left out unless `reveal_secrets` (a token from `token_file` is
    never printed: the file is named instead)."""
    data = _section_mapping(config, Config)
    for key in top_level_keys():
        if key == "services":
            data[key] = {
                name: _section_mapping(policy, PolicyConfig, unlike=config.policy)
                for name, policy in config.services.items()
            }
        elif key in sections():
            data[key] = _section_mapping(getattr(config, key), sections()[key])
    if config.http.token_file is not None or not reveal_secrets:
        del data["http"]["token"]
    return data


def _section_mapping(
    section: object, cls: type[Any], unlike: object | None = None
) -> dict[str, Any]:
    return {
        key: setting.kind.dump(getattr(section, setting.attr))
        for key, setting in settings_of(cls).items()
        if unlike is None or getattr(section, setting.attr) != getattr(unlike, setting.attr)
    }


# --- where a value came from ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    """A key path for messages: `config http.port`, or the environment variable that set it."""

    source: str
    path: tuple[str, ...] = ()
    origins: Mapping[tuple[str, ...], str] = field(default_factory=dict)

    def key(self, *names: object) -> _Where:
        return replace(self, path=(*self.path, *map(str, names)))

    def __str__(self) -> str:
        dotted = ".".join(self.path)
        variable = self.origins.get(self.path)
        if variable is not None:
            return f"{variable} ({dotted})"
        return f"{self.source} {dotted}" if dotted else self.source


_REPR = reprlib.Repr()
_REPR.maxstring = 140  # room for a namespace/name key: two 63-character labels
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def _show(value: object) -> str:
    """A value in a message: short even for a huge or deeply nested YAML node."""
    return _REPR.repr(value)


def _expected(where: _Where | str, allowed: str, value: object) -> str:
    """The one wording of a refused value: where, what is allowed, what was given."""
    return f"{where}: expected {allowed}, got {_show(value)}"


def _reject(where: _Where | str, allowed: str, value: object) -> NoReturn:
    raise InputError(_expected(where, allowed, value))


# --- building the config --------------------------------------------------------------------------

_MAPPING_ERRORS = {"dataclass_type", "dataclass_exact_type", "dict_type", "mapping_type"}
_UNKNOWN_KEY_ERRORS = {"unexpected_keyword_argument", "invalid_key"}


def _build(data: object, source: str, env: Mapping[str, str]) -> Config:
    where = _Where(source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        _reject(where, "a mapping of sections at the top level", data)
    overrides = _env_overrides(env)
    merged = _merge(data, overrides)
    where = _Where(source, origins={path: variable for variable, (path, _) in overrides})
    _check_token_source(merged.get("http"), where.key("http"))
    try:
        config = _validator().validate_python(_layered(merged))
    except ValidationError as error:
        raise InputError(_message(error, where)) from None
    if config.http.token_file is not None:
        token = _read_token(config.http.token_file, where.key("http", "token_file"))
        config = replace(config, http=replace(config.http, token=token))
    return config


def _layered(merged: Mapping[Any, Any]) -> dict[Any, Any]:
    """The data as the schema reads it: an empty section (every key commented out, YAML null)
    is the defaults, and each service's overrides go over the `policy` section's values."""
    empty = {key for key, value in merged.items() if value is None and _is_section(key)}
    layered = {key: value for key, value in merged.items() if key not in empty}
    policy = layered.get("policy", {})
    services = layered.get("services")
    if isinstance(services, Mapping) and isinstance(policy, Mapping):
        layered["services"] = {
            name: {**policy, **(own or {})} if isinstance(own, Mapping) or own is None else own
            for name, own in services.items()
        }
    return layered


def _is_section(key: object) -> bool:
    return key == "services" or key in sections()


def _check_token_source(http: object, where: _Where) -> None:
    if isinstance(http, Mapping) and None not in (http.get("token"), http.get("token_file")):
        raise InputError(f"{where}: token and token_file are exclusive; set one of them")


def _message(error: ValidationError, where: _Where) -> str:
    """The first problem as one line: unknown keys first (a misspelt key often explains a
    refused value), then in declaration order."""
    problems = error.errors(include_url=False)
    first = next((p for p in problems if p["type"] in _UNKNOWN_KEY_ERRORS), problems[0])
    loc = tuple(first["loc"])
    if first["type"] in _UNKNOWN_KEY_ERRORS:
        return _unknown_key(loc, where)
    if first["type"] == REFUSED:
        return _refused(first, loc, where)
    if first["type"] in _MAPPING_ERRORS:
        allowed = (
            "a mapping of namespace/name to policy overrides"
            if loc == ("services",)
            else "a mapping"
        )
        return _expected(where.key(*loc), allowed, first["input"])
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, SettingError):
        return _conflict(cause, loc, where)
    return f"{where.key(*loc)}: {first['msg']}"


def _refused(problem: ErrorDetails, loc: tuple[Any, ...], where: _Where) -> str:
    context = problem.get("ctx") or {}
    if loc and loc[-1] == "[key]":  # a mapping key (a service's namespace/name)
        loc = loc[:-2]
    return _expected(where.key(*loc), context["allowed"], context["refused"])


def _unknown_key(loc: tuple[Any, ...], where: _Where) -> str:
    *path, name = loc
    names = list(settings_of(_section_at(tuple(path)))) if path else top_level_keys()
    close = difflib.get_close_matches(str(name).lower(), names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{where.key(*path)}: unknown key {_show(name)} ({hint}allowed: {', '.join(names)})"


def _conflict(error: SettingError, loc: tuple[Any, ...], where: _Where) -> str:
    """A section's cross-key refusal under the user's key paths."""
    section = _section_at(loc)
    paths = [(*loc, *_key_of(section, key).split(".")) for key in error.keys]
    if len(paths) == 1:
        return f"{replace(where, path=paths[0])}: {error.reason}"
    if not paths:
        return f"{where.key(*loc)}: {error.reason}"
    return f"{where.source} {', '.join('.'.join(p) for p in paths)}: {error.reason}"


def _section_at(path: tuple[Any, ...]) -> type[Any]:
    if not path:
        return Config
    return PolicyConfig if path[0] == "services" else sections()[path[0]]


def _key_of(section: type[Any], name: str) -> str:
    """The YAML key of an attribute (`stable_window_s` → `stable_window`); a key is itself."""
    keys = {setting.attr: key for key, setting in settings_of(section).items()}
    return keys.get(name, name)


def _read_token(path: str, where: _Where) -> str:
    """The token file's content, stripped (a mounted Secret often ends with a newline)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: token file {path!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{where}: token file {path!r} is a directory, not a file") from None
    except OSError as error:
        raise InputError(f"{where}: token file {path!r} cannot be read: {error.strerror}") from None
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{where}: token file {path!r} is not readable UTF-8 text") from None
    token = text.strip()
    if not token:
        raise InputError(f"{where}: token file {path!r} is empty")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise InputError(f"{where}: token file {path!r} must hold one token without spaces")
    return token


# --- the environment ------------------------------------------------------------------------------


def _env_help() -> str:
    return (
        f"expected {ENV_PREFIX}MODE, {ENV_PREFIX}TICK or {ENV_PREFIX}<SECTION>__<KEY> with "
        f"SECTION one of {', '.join(s.upper() for s in sections())} ({CONFIG_FILE_VARIABLE} "
        "names the file)"
    )


_SERVICE_LINK_SUFFIX = re.compile(
    r"SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?"
)

_PLAIN_NAME = re.compile(r"[\w./-]+")
"""A variable named as is in messages; any other name is quoted (it may hold a newline)."""
_Override = tuple[str, tuple[tuple[str, ...], Any]]
"""(variable, (key path, value))."""


def _env_overrides(env: Mapping[str, str]) -> list[_Override]:
    """Every `LEADTIME_*` variable (its name for messages) with its key path and value;
    unknown ones are errors."""
    found: dict[tuple[str, ...], str] = {}
    overrides: list[_Override] = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or variable == CONFIG_FILE_VARIABLE:
            continue
        if _is_service_link(variable, env):
            continue
        name = variable if _PLAIN_NAME.fullmatch(variable) else repr(variable)
        path = tuple(variable[len(ENV_PREFIX) :].lower().split("__"))
        key = _env_key(name, path)
        if path in found:
            raise InputError(f"{found[path]} and {name} both set {'.'.join(path)}")
        found[path] = name
        overrides.append((name, (path, _env_value(env[variable], key))))
    return overrides


def _is_service_link(variable: str, env: Mapping[str, str]) -> bool:
    """Kubernetes gives every pod `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT`, ... for each
    Service of its namespace, so a Service named `leadtime` (or `leadtime-api`) puts variables
    under our prefix that are not config; they are known by their `_SERVICE_HOST` sibling."""
    for index, char in enumerate(variable):
        if char == "_" and _SERVICE_LINK_SUFFIX.fullmatch(variable, index + 1):
            if f"{variable[:index]}_SERVICE_HOST" in env:
                return True
    return False


def _env_key(variable: str, path: tuple[str, ...]) -> Kind:
    top = settings_of(Config)
    if len(path) == 1 and path[0] in top:
        return top[path[0]].kind
    if len(path) == 2 and path[0] == "services":
        raise InputError(f"{variable}: per-service overrides are read from the config file only")
    if len(path) == 2 and path[0] in sections():
        keys = settings_of(sections()[path[0]])
        if path[1] in keys:
            return keys[path[1]].kind
        raise InputError(
            f"{variable}: unknown key {path[1]!r} in {path[0]} (allowed: {', '.join(keys)})"
        )
    raise InputError(f"unknown environment variable {variable}: {_env_help()}")


def _env_value(text: str, kind: Kind) -> Any:
    """The variable read as a YAML scalar (`0.95`, `true`, `null`, `30s`)."""
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):  # ValueError: int('9' * 5000)
        return text
    if kind.text and value is not None and not isinstance(value, str):
        return text
    return value


def _merge(top: Mapping[Any, Any], overrides: list[_Override]) -> dict[Any, Any]:
    """The file's sections with the environment's values put over them."""
    merged = dict(top)
    for _, (path, value) in overrides:
        if len(path) == 1:
            merged[path[0]] = value
            continue
        section, key = path
        current = merged.get(section)
        if current is None:
            merged[section] = {key: value}
        elif isinstance(current, Mapping):
            merged[section] = {**current, key: value}
        # else: the section is not a mapping, which its own check reports
    return merged


# --- the file -------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """`yaml.safe_load` that refuses duplicate keys: PyYAML keeps the last one silently, so a
    second `policy:` section would erase the first without a word."""


def _construct_mapping(loader: _StrictLoader, node: Any) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:
            continue  # unhashable: construct_yaml_map reports it
        if first != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {_show(key)} (first on line {first})",
                key_node.start_mark,
            )
    return loader.construct_yaml_map(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _read_yaml(path: str) -> object:
    try:
        with open(path, "rb") as stream:
            return yaml.load(stream, Loader=_StrictLoader)
    except FileNotFoundError:
        raise InputError(f"config file {path!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"config file {path!r} is a directory, not a file") from None
    except OSError as error:
        raise InputError(f"config file {path!r} cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise InputError(_yaml_problem(path, error)) from None
    except RecursionError:
        raise InputError(f"{path}: invalid YAML: nested too deeply") from None
    except ValueError as error:
        raise InputError(f"config file {path!r} cannot be read: {error}") from None


def _yaml_problem(path: str, error: yaml.YAMLError) -> str:
    """`FILE line L, column C: invalid YAML: problem`, on one line."""
    if isinstance(error, yaml.reader.ReaderError):
        return f"{path}: not UTF-8 text (byte {error.position})"
    mark = getattr(error, "problem_mark", None)
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    if mark is None:
        return f"{path}: invalid YAML: {problem}"
    return f"{path} line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}"
