"""The settings as data, read off their declarations in `sections.py`: for each section, each
setting's YAML key, attribute, kind, default, doc and annotation.

Why read them off the dataclasses rather than list them again: the loader, the environment
overrides, the annotations, `config show` and the generated references all iterate over these
records, so a setting added to a section is everywhere at once, and nothing can disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any

from pydantic.fields import FieldInfo

from autoscaler.config.kinds import Kind
from autoscaler.config.sections import Annotation, Config, PolicyConfig


@dataclass(frozen=True)
class Setting:
    """One setting: where it lives in YAML and in the dataclass, and what it accepts."""

    key: str
    attr: str
    kind: Kind
    doc: str
    default: Any
    annotation: str | None = None


_SETTINGS: dict[type, dict[str, Setting]] = {}


def settings_of(section: type) -> dict[str, Setting]:
    """The section's settings by YAML key, in declaration order; nested sections left out."""
    if section not in _SETTINGS:
        _SETTINGS[section] = _read_settings(section)
    return _SETTINGS[section]


def _read_settings(section: type) -> dict[str, Setting]:
    hints = typing.get_type_hints(section, include_extras=True)
    found: dict[str, Setting] = {}
    for attribute in dataclasses.fields(section):
        metadata = getattr(hints[attribute.name], "__metadata__", ())
        kind = next((m for m in metadata if isinstance(m, Kind)), None)
        if kind is None:
            continue
        info = next((m for m in metadata if isinstance(m, FieldInfo)), FieldInfo())
        annotation = next((m.name for m in metadata if isinstance(m, Annotation)), None)
        key = info.alias or attribute.name
        found[key] = Setting(
            key, attribute.name, kind, info.description or "", _default(attribute), annotation
        )
    return found


def _default(attribute: dataclasses.Field[Any]) -> Any:
    if attribute.default_factory is not dataclasses.MISSING:
        return attribute.default_factory()
    return attribute.default


@functools.cache
def sections() -> dict[str, type[Any]]:
    """Config's nested sections by YAML key (`services` is a mapping of policies, not one)."""
    hints = typing.get_type_hints(Config)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(Config)
        if dataclasses.is_dataclass(hints[f.name])
    }


def top_level_keys() -> list[str]:
    """Every key the file may have at the top level, in declaration order."""
    top = {s.attr: s.key for s in settings_of(Config).values()}
    return [top.get(f.name, f.name) for f in dataclasses.fields(Config)]


@functools.cache
def annotated_policy_settings() -> dict[str, Setting]:
    """Annotation → the policy setting it sets."""
    return {s.annotation: s for s in settings_of(PolicyConfig).values() if s.annotation}
