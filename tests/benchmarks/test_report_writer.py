"""The bench report writer turns given figures into a Markdown table per measured section
and the PNG plots the report links to; nothing is measured here."""

from __future__ import annotations

from benchmarks.report_writer import SECTIONS, markdown_table, write_report

CONTEXT = {"command": "bench_report.py --quick", "date": "2026-01-01 00:00 UTC", "commit": "abc1234",
           "duration_s": 90.0, "machine": {"cores": 2}, "remarks": ["a shared machine"]}


def round_trip(label: str, rate: float, p99_ms: float | None) -> dict:
    return {"label": label, "clients": 16, "round_trips_per_s": rate, "p50_ms": 20.0, "p99_ms": p99_ms,
            "failures": 0, "node_cpu_ms": 2.0}


def test_a_row_per_figure_and_a_dash_for_a_missing_one() -> None:
    columns = SECTIONS[0].columns
    table = markdown_table(columns, [round_trip("1 node, 1 worker", 512.25, None)]).splitlines()
    assert table[0] == "| configuration | clients | round trips/s | p50 ms | p99 ms | failures | node CPU ms/rt |"
    assert table[2] == "| 1 node, 1 worker | 16 | 512.2 | 20.0 | — | 0 | 2.00 |"


def test_the_report_holds_the_measured_sections_and_links_plots_that_exist(tmp_path) -> None:
    sections = {"workers": {"setup": "one node", "rows": [round_trip("1 node, 1 worker", 300.0, 40.0),
                                                          round_trip("1 node, 2 workers", 500.0, 45.0)]},
                "relay": {"setup": "a chain", "rows": [{**round_trip("adjacent", 60.0, 600.0),
                                                        "link_bits_per_key_bit": 1.0}]}}
    text = write_report(tmp_path, sections, CONTEXT).read_text()
    assert "| 1 node, 2 workers | 16 | 500.0 |" in text and "| adjacent | 16 | 60.0 |" in text
    assert "## One node by store" not in text, "a section not measured is left out"
    linked = {line.split("(")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")}
    assert linked == {"throughput.png", "latency.png", "relay.png"}
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in linked)
