"""When a satellite downlink has a pass: a window of ``pass_s`` starting at ``offset_s``
plus every multiple of ``interval_s`` on the Unix clock.

Downlinks of one satellite share the interval (one orbit) and differ in the offset: the
satellite reaches each ground station at its own point of the orbit, and with one
optical terminal it serves one station at a time, so a satellite that relays between
two stations far apart (Micius between Xinglong and Graz, Liao et al., PRL 120, 030501
(2018)) makes key with each in separate passes.  Light module (no simulator imports):
``qkms init`` uses it to stagger the passes of the satellite links it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

#: One pass a day: a ground station sees a low-orbit satellite at night about once a day
#: (Micius's passes over one station were nightly, Liao et al., Nature 549, 43 (2017)).
DEFAULT_PASS_INTERVAL_S = 86_400.0


@dataclass(frozen=True)
class PassSchedule:
    """A repeating pass window; errors name the config settings they come from."""

    interval_s: float
    pass_s: float
    offset_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.offset_s < self.interval_s:
            raise ValueError(f"pass_offset_s: must be in [0, pass_interval_s = {self.interval_s:g}) "
                             f"(got {self.offset_s!r})")
        if not 0.0 < self.pass_s <= self.interval_s:
            raise ValueError(f"pass_duration_s: a pass of {self.pass_s:g} s does not fit in "
                             f"pass_interval_s = {self.interval_s:g}")

    def _into_s(self, unix_s: float) -> float:
        return (unix_s - self.offset_s) % self.interval_s

    def fraction_at(self, unix_s: float) -> float | None:
        """Where in a pass ``unix_s`` falls (0 rise .. 1 set), None between passes."""
        into = self._into_s(unix_s)
        return into / self.pass_s if into < self.pass_s else None

    def seconds_to_next(self, unix_s: float) -> float:
        """0 during a pass, else the wait until the next one begins."""
        into = self._into_s(unix_s)
        return 0.0 if into < self.pass_s else self.interval_s - into

    def seconds_since_end(self, unix_s: float) -> float | None:
        """How long ago the last pass ended, None during a pass."""
        into = self._into_s(unix_s)
        return None if into < self.pass_s else into - self.pass_s

    def overlaps(self, other: "PassSchedule") -> bool:
        """Whether the two (of one interval) ever have a pass at the same moment."""
        shift_s = (other.offset_s - self.offset_s) % self.interval_s
        return shift_s < self.pass_s or shift_s + other.pass_s > self.interval_s


def staggered_offsets_s(interval_s: float, count: int) -> list[float]:
    """Offsets spreading ``count`` downlinks of one satellite evenly over its period (no
    two overlap while each pass is at most ``interval_s / count``)."""
    return [index * interval_s / count for index in range(count)]


def first_conflict(schedules: list[PassSchedule]) -> tuple[int, str] | None:
    """The first of one terminal's schedules that cannot run beside the earlier ones (a
    different period, or a pass overlapping theirs) and why; None if all can."""
    for later, b in enumerate(schedules):
        for earlier, a in enumerate(schedules[:later]):
            if b.interval_s != a.interval_s:
                return later, (f"pass_interval_s: {b.interval_s:g} s differs from {a.interval_s:g} s "
                               f"of satellite link #{earlier + 1} at this node (one orbit, one period)")
            if a.overlaps(b):
                return later, (f"pass_offset_s: its passes overlap those of satellite link #{earlier + 1} at "
                               f"this node (offset {a.offset_s:g} s); one terminal serves one pass at a time")
    return None
