"""What Bob's detectors remember between gates: dead time and after-pulses.

Both Monte Carlo samplers first decide, gate by gate and independently, whether each
detector *would* fire (photons or a dark count: the "raw" click); this module then
applies the detectors' memory in time order, the same code for both samplers:

* dead time (non-paralysable, per detector): a click blinds its detector for the next
  ``dead_gates`` gates; a raw click there is lost.  A gated APD with a hold-off, or a
  free-running SNSPD's recovery time, expressed in pulse slots
  (``LinkParams.dead_time_gates``).  The detector then saturates at one click per
  ``dead_gates + 1`` gates: a raw click rate r per gate becomes r / (1 + r D) (the
  non-paralysable dead-time law, e.g. Rogers et al., New J. Phys. 9, 319 (2007)).
* after-pulses (first order): a raw click that the detector registers makes it fire
  again, with probability ``afterpulse_prob``, in the first gate after its dead time
  (the next gate when there is none); after-pulses do not cause further after-pulses
  and, when both detectors click, Bob assigns a random bit as for any double click.

A dead detector cannot fire while the other can, so a photon can reach Bob in a gate
where only one detector is live: the dead-time side channel of Weier et al., New J.
Phys. 13, 073024 (2011), is therefore present in the simulation as in the devices.

The kernel is compiled with numba: it is a sequential scan over clicks (each depends
on the previous ones), which NumPy cannot vectorise.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np


@dataclasses.dataclass
class DetectorState:
    """Carried from one chunk of gates to the next: when each detector is live again,
    and the gate of a pending after-pulse (-1: none)."""

    live_from: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2, np.int64))
    afterpulse_at: np.ndarray = dataclasses.field(default_factory=lambda: np.full(2, -1, np.int64))


@dataclasses.dataclass(frozen=True)
class Clicks:
    """Registered clicks in time order: gate, detector 0 and 1 fired, index of the raw
    click it came from (-1: an after-pulse in a gate without a raw click)."""

    gates: np.ndarray
    d0: np.ndarray
    d1: np.ndarray
    raw_index: np.ndarray


@numba.njit(cache=True, nogil=True)
def _scan(gates, raw0, raw1, u_ap, end, dead, p_ap, live_from, afterpulse_at,
          out_gates, out0, out1, out_raw):
    n_out = 0
    i = 0
    n = gates.size
    while True:
        g = gates[i] if i < n else end
        for d in range(2):
            if afterpulse_at[d] >= 0 and afterpulse_at[d] < g:
                g = afterpulse_at[d]
        if g >= end:
            break
        from_raw = i < n and gates[i] == g
        fired0 = False
        fired1 = False
        for d in range(2):
            raw = from_raw and (raw0[i] if d == 0 else raw1[i])
            real = raw and g >= live_from[d]
            after = afterpulse_at[d] == g
            if real or after:
                live_from[d] = g + dead + 1
                afterpulse_at[d] = -1
                if real and u_ap[i, d] < p_ap:
                    afterpulse_at[d] = g + dead + 1
                if d == 0:
                    fired0 = True
                else:
                    fired1 = True
        if fired0 or fired1:
            out_gates[n_out] = g
            out0[n_out] = fired0
            out1[n_out] = fired1
            out_raw[n_out] = i if from_raw else -1
            n_out += 1
        if from_raw:
            i += 1
    return n_out


def register_clicks(gates: np.ndarray, raw0: np.ndarray, raw1: np.ndarray, end: int,
                    params_dead_gates: int, afterpulse_prob: float, state: DetectorState,
                    rng: np.random.Generator) -> Clicks:
    """Apply dead time and after-pulses to raw clicks at sorted ``gates`` (< ``end``).

    Gates are absolute (counted from the start of the frame); ``state`` carries the
    detectors' memory from the previous chunk and is updated for the next.  After-pulses
    due at or beyond ``end`` stay pending in ``state``.
    """
    u_ap = rng.random((gates.size, 2)) if afterpulse_prob > 0.0 else np.ones((gates.size, 2))
    size = 2 * gates.size + 2
    out_gates, out_raw = np.empty(size, np.int64), np.empty(size, np.int64)
    out0, out1 = np.empty(size, np.bool_), np.empty(size, np.bool_)
    n = _scan(gates.astype(np.int64), raw0.astype(np.bool_), raw1.astype(np.bool_), u_ap, end,
              params_dead_gates, afterpulse_prob, state.live_from, state.afterpulse_at,
              out_gates, out0, out1, out_raw)
    return Clicks(out_gates[:n], out0[:n], out1[:n], out_raw[:n])
