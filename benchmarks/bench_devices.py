"""Benchmark: a device-fed link, end to end: the key rate it sustains into the pools and
the time from a device fault to degraded health.

Starts nodes A and B (``qkms serve``) and the pair of mock QKD devices feeding link A-B
(``qkms mock-device``, each running one end of the simulated link: snspd-illustrative
detectors, 10 km, a frame of ``--pulses`` pulses every ``--frame-interval-s``). By default
the pool target is out of reach, so the master end pulls whatever the devices make;
``--target-pool-bits`` sets a reachable one (an idle link: the ends only probe their
devices, every ``--probe-interval-s``).

1. Rate: after ``--warmup-s``, the bits added to node A's pools (both halves: available +
   carved + taken + discarded) over ``--window-s``, in bits per second; the same at B;
   and, over the same window, the bits device A's simulated link made (its ``feed``), for
   comparison: what the pools get is what the master pulled, less the equality check's pad.
2. Fault to degraded: ``--faults`` times, a device is told to fail (``--fault``, default
   ``unavailable``: every ETSI request answered 503) at t0; node A's link half, read over
   the KM channel every 50 ms, shows a state other than ``up`` at t1; the fault is
   cleared and the link waited for to be ``up`` again (t2). Reports t1 - t0 and t2 - t1.

    .venv/bin/python benchmarks/bench_devices.py --window-s 60 --faults 5
    .venv/bin/python benchmarks/bench_devices.py --window-s 30 --faults 5 --target-pool-bits 200000 \
        --probe-interval-s 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qkms.link_status import fetch_link_state  # noqa: E402
from tests.support.conditions import wait_until  # noqa: E402
from tests.support.network import FAST_LINK, LocalNetwork  # noqa: E402


def added_bits(net: LocalNetwork, kme_id: str, link_id: str = "A-B") -> int:
    pools = net.pools(kme_id)
    total = 0
    for owner in ("A", "B"):
        usage = pools.usage_bits(link_id, owner)
        total += pools.available_bits(link_id, owner) + sum(usage.values())
    return total


def device_made_bits(net: LocalNetwork, kme_id: str = "A", link_id: str = "A-B") -> int:
    pair = net.devices[link_id]
    name = pair.entries["mock_devices"][kme_id]["name"]
    return pair.control(kme_id).get("state", extensions={"sni_hostname": name}).json()["feed"]["bits"]


def half_state(net: LocalNetwork) -> tuple[str, str]:
    half = next(h for h in fetch_link_state(net.manifest, "A").halves if h.link_id == "A-B" and h.owner == "A")
    return half.state, half.reason


def wait_for(condition, what: str, timeout_s: float, poll_s: float = 0.05) -> float:
    """Seconds until ``condition()`` held (polled every ``poll_s``)."""
    started = time.monotonic()
    wait_until(condition, what, timeout_s, poll_s)
    return time.monotonic() - started


def measure_rate(net: LocalNetwork, warmup_s: float, window_s: float) -> dict:
    wait_for(lambda: added_bits(net, "A") > 0, "the first keys in A's pools", 300, 0.5)
    time.sleep(warmup_s)
    start = {kme: added_bits(net, kme) for kme in ("A", "B")}
    made = device_made_bits(net)
    t0 = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - t0
    rates = {f"pool_fill_bps_{kme}": round((added_bits(net, kme) - start[kme]) / elapsed) for kme in ("A", "B")}
    return {**rates, "device_made_bps": round((device_made_bits(net) - made) / elapsed), "window_s": round(elapsed, 1)}


def measure_faults(net: LocalNetwork, fault: str, device: str, repeats: int) -> dict:
    pair = net.devices["A-B"]
    detect, recover, reasons, recovering = [], [], [], set()
    for _ in range(repeats):
        wait_for(lambda: half_state(net)[0] == "up", "the link up", 120, 0.2)
        pair.set_faults(device, fault)
        detect.append(wait_for(lambda: half_state(net)[0] != "up", "the link degraded", 60))
        reasons.append(half_state(net)[1])
        pair.clear_faults(device)
        recover.append(wait_for(lambda: recovered(net, recovering), "the link up again", 120, 0.1))
    return {"fault": fault, "device": device, "fault_to_degraded_s": [round(x, 2) for x in detect],
            "fault_to_degraded_median_s": round(statistics.median(detect), 2),
            "healed_to_up_s": [round(x, 2) for x in recover], "reason": reasons[-1],
            "reasons_while_recovering": sorted(recovering)}


def recovered(net: LocalNetwork, reasons: set[str]) -> bool:
    """Whether A's half is up again; the reasons it gives meanwhile are collected, without
    their counters (e.g. "3 consecutive failure(s)")."""
    state, reason = half_state(net)
    reasons.add(reason.split(" (")[0])
    return state == "up"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=["mock-device", "mock-device-004"], default="mock-device")
    parser.add_argument("--warmup-s", type=float, default=20)
    parser.add_argument("--window-s", type=float, default=60)
    parser.add_argument("--faults", type=int, default=5)
    parser.add_argument("--fault", default="unavailable")
    parser.add_argument("--device", default="A", help="The end whose device misbehaves.")
    parser.add_argument("--pulses", type=int, default=3_000_000)
    parser.add_argument("--frame-interval-s", type=float, default=2.0)
    parser.add_argument("--target-pool-bits", type=int, default=1 << 40,
                        help="The pool level the master keeps (ETSI 014); default: out of reach.")
    parser.add_argument("--probe-interval-s", type=float, default=1.0)
    args = parser.parse_args()
    settings = {"poll_interval_s": 0.5, "probe_interval_s": args.probe_interval_s, "health_window_s": 5,
                "breaker_cooldown_s": 3, "backoff_max_s": 2}
    if args.protocol == "mock-device-004":  # a pushing device sets its own pace: no pool target
        settings |= {"key_chunk_size_bytes": 256, "chunks_per_block": 16}
    else:
        settings["target_pool_bits"] = args.target_pool_bits
    with tempfile.TemporaryDirectory(prefix="qkms-device-bench-") as tmp:
        simulation = {"preset": "snspd-illustrative", "length_km": 10, "pulses_per_frame": args.pulses,
                      "frame_interval_s": args.frame_interval_s}
        net = LocalNetwork(Path(tmp), {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")], FAST_LINK,
                           {"A-B": args.protocol}, source_settings=settings, simulation=simulation)
        try:
            net.start()
            result = {"protocol": args.protocol, "simulation": simulation, "settings": settings,
                      **measure_rate(net, args.warmup_s, args.window_s)}
            result |= measure_faults(net, args.fault, args.device, args.faults)
        finally:
            net.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
