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


def known_kinds() -> list[str]:
    """Names of every available source, without importing any of them."""
    return sorted({*BUILTIN_SOURCES, *(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))})


def source_class(kind: str) -> type[KeySource]:
    """The class of the source called ``kind``, importing only that source's module
    (a serving process must not load a simulator it does not run)."""
    if kind in BUILTIN_SOURCES:
        return BUILTIN_SOURCES[kind]
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=kind):
        return entry.load()
    raise _unknown(kind)


def require_known_kind(kind: str) -> None:
    """ConfigError unless a source called ``kind`` is available (nothing is imported)."""
    if kind not in known_kinds():
        raise _unknown(kind)


def _unknown(kind: str) -> ConfigError:
    return ConfigError(f"kind: unknown key source {kind!r} (known: {', '.join(known_kinds())})")


def build_source(kind: str, section: dict[str, Any], context: SourceContext) -> KeySource:
    """Instantiate the source called ``kind`` from its config section."""
    return source_class(kind).from_config(section, context)


def validate_source(kind: str, section: dict[str, Any], context: SourceContext) -> None:
    """ConfigError naming the bad setting if the source's section is invalid; starts nothing."""
    source_class(kind).validate_config(section, context)
