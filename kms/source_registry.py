"""Key sources by name: a plain factory map plus ``qkms.key_sources`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from kms.csprng_source import CsprngSource
from kms.errors import ConfigError
from kms.sources import KeySource, SourceContext

BUILTIN_SOURCES: dict[str, type[KeySource]] = {CsprngSource.kind: CsprngSource}
ENTRY_POINT_GROUP = "qkms.key_sources"


def available_sources() -> dict[str, type[KeySource]]:
    """Built-in sources and those registered by installed packages."""
    found = dict(BUILTIN_SOURCES)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.load())
    return found


def source_class(kind: str) -> type[KeySource]:
    """The class of the source called ``kind``, importing only that source's module
    (a serving process must not load a simulator it does not run)."""
    if kind in BUILTIN_SOURCES:
        return BUILTIN_SOURCES[kind]
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=kind):
        return entry.load()
    known = sorted({*BUILTIN_SOURCES, *(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))})
    raise ConfigError(f"kind: unknown key source {kind!r} (known: {', '.join(known)})")


def build_source(kind: str, section: dict[str, Any], context: SourceContext) -> KeySource:
    """Instantiate the source called ``kind`` from its config section."""
    return source_class(kind).from_config(section, context)
