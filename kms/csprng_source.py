"""The node's own CSPRNG as a key source: keys between SAEs of the same node."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from kms.errors import ConfigError
from kms.keys import KeyBlock, Provenance
from kms.sources import KeySource, SourceContext, SourceHealth


class CsprngSource(KeySource):
    """Fresh bits from the operating system's CSPRNG, on demand, without limit."""

    kind = "csprng"
    on_demand = True

    def __init__(self, context: SourceContext):
        self._context = context
        self._counter = itertools.count()

    @classmethod
    def from_config(cls, section: dict[str, Any], context: SourceContext) -> "CsprngSource":
        if section:
            raise ConfigError(f"{', '.join(sorted(section))}: unknown setting for the csprng source")
        return cls(context)

    def fetch(self, max_bits: int) -> list[KeyBlock]:
        size_bytes = max_bits // 8
        if size_bytes <= 0:
            return []
        block_id = f"{self._context.kme_id}-csprng-{next(self._counter)}"
        return [KeyBlock(block_id, secrets.token_bytes(size_bytes))]

    def health(self) -> SourceHealth:
        return SourceHealth("up", "operating-system CSPRNG")

    @property
    def provenance(self) -> Provenance:
        return Provenance(("csprng",), ("os-urandom",), (self._context.kme_id,))
