"""Optional dependencies: a feature that needs one imports it where it is used.

A plain ``pip install qkms`` serves keys; plotting and other extras install more. Such
imports sit inside ``with optional_dependency(extra=..., feature=...)`` so that
without the extra the user reads which one to install instead of a traceback, and so
that ``tests/test_dependencies.py`` can check the package is declared in that extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from kms.errors import MissingExtra


@contextlib.contextmanager
def optional_dependency(extra: str, feature: str) -> Iterator[None]:
    """Turn a ModuleNotFoundError inside the block into MissingExtra naming ``extra``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "a module").partition(".")[0]
        raise MissingExtra(feature, missing, extra) from None
