"""The bench report from measured figures: ``report.md`` (a table per section) and PNG
plots next to it. Knows nothing of how the figures were measured; ``bench_report.py``
runs the benchmarks and hands their figures here.

``sections`` maps a section key of SECTIONS to ``{"setup": text, "rows": [row, ...]}``,
a row being a dict with a ``label`` and the columns' keys; a section not measured is
left out. ``context`` says where and how: ``command``, ``date``, ``commit``,
``duration_s``, ``machine`` (name -> value) and ``remarks`` (list of lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    fmt: str = "{}"


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    columns: tuple[Column, ...]


ROUND_TRIP = (Column("configuration", "label"), Column("clients", "clients"),
              Column("round trips/s", "round_trips_per_s", "{:.1f}"), Column("p50 ms", "p50_ms", "{:.1f}"),
              Column("p99 ms", "p99_ms", "{:.1f}"), Column("failures", "failures"),
              Column("node CPU ms/rt", "node_cpu_ms", "{:.2f}"))
SECTIONS = (
    Section("workers", "One node, embedded Redis, by gevent workers", ROUND_TRIP),
    Section("replicas", "Replicas of one node behind HAProxy", ROUND_TRIP),
    Section("stores", "One node by store", ROUND_TRIP),
    Section("relay", "Adjacent and relayed keys", (
        Column("route", "label"), Column("clients", "clients"),
        Column("round trips/s", "round_trips_per_s", "{:.1f}"), Column("p50 ms", "p50_ms", "{:.1f}"),
        Column("p99 ms", "p99_ms", "{:.1f}"), Column("failures", "failures"),
        Column("link bits per key bit", "link_bits_per_key_bit", "{:.2f}"))),
    Section("simulation", "Simulation: event-level Monte Carlo", (
        Column("preset", "label"), Column("pulses per run", "pulses", "{:.0e}"),
        Column("runs", "runs"), Column("median pulses per CPU s", "median_pulses_per_s", "{:.3g}"),
        Column("min", "min_pulses_per_s", "{:.3g}"), Column("max", "max_pulses_per_s", "{:.3g}"))),
    Section("postprocessing", "Post-processing: Cascade, verification, privacy amplification", (
        Column("QBER", "label"), Column("sifted bits", "sifted_bits"),
        Column("both parties Mbit/s", "both_parties_mbps", "{:.2f}"),
        Column("seed per party Mbit/s", "seed_per_party_mbps", "{:.2f}"),
        Column("one party Mbit/s", "one_party_mbps", "{:.2f}"), Column("f", "efficiency", "{:.4f}"),
        Column("failed frames", "failed_frames"))),
)
#: The round-trip sections compared in the throughput and latency plots.
COMPARED = ("workers", "replicas", "stores")


def markdown_table(columns: tuple[Column, ...], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(c.header for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c, row.get(c.key)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(column: Column, value) -> str:
    return "—" if value is None else column.fmt.format(value)


def write_report(out_dir: Path, sections: dict, context: dict) -> Path:
    """Write ``report.md`` and its plots into ``out_dir``; the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(out_dir, sections)
    parts = [f"# qkms benchmark report\n\nMeasured by `{context['command']}` on {context['date']} "
             f"(commit `{context['commit']}`, {context['duration_s'] / 60:.1f} minutes). Every figure below "
             "comes from that one run.",
             "## Machine\n\n" + "\n".join(f"- {name}: {value}" for name, value in context["machine"].items()),
             "\n".join(f"> {line}" for line in context["remarks"])]
    for section in SECTIONS:
        if section.key in sections:
            measured = sections[section.key]
            parts.append(f"## {section.title}\n\n{measured['setup']}\n\n"
                         + markdown_table(section.columns, measured["rows"]))
            parts.extend(f"![{name}]({path.name})" for name, path in plots.get(section.key, {}).items())
    report = out_dir / "report.md"
    report.write_text("\n\n".join(parts) + "\n")
    return report


def write_plots(out_dir: Path, sections: dict) -> dict[str, dict[str, Path]]:
    """The PNGs drawn, by the section they follow: round-trip throughput and latency
    across workers, replicas and stores; adjacent against relayed keys."""
    from adapters.qkd_sim.sweep import pyplot

    plt = pyplot()
    plots: dict[str, dict[str, Path]] = {}
    compared = [(key, row) for key in COMPARED for row in sections.get(key, {}).get("rows", [])]
    if compared:
        last = [key for key in COMPARED if key in sections][-1]
        plots[last] = {"round-trip throughput": _bars(plt, out_dir / "throughput.png", compared, [THROUGHPUT]),
                       "round-trip latency": _bars(plt, out_dir / "latency.png", compared, [LATENCY])}
    if "relay" in sections:
        routes = [("relay", row) for row in sections["relay"]["rows"]]
        plots["relay"] = {"adjacent and relayed": _bars(plt, out_dir / "relay.png", routes, [THROUGHPUT, LATENCY])}
    return plots


#: A plot panel: the row keys drawn side by side, the y axis label.
THROUGHPUT = (("round_trips_per_s",), "round trips/s")
LATENCY = (("p50_ms", "p99_ms"), "round-trip latency (ms), plain p50, hatched p99")


def _bars(plt, path: Path, rows: list[tuple[str, dict]], panels: list[tuple[tuple[str, ...], str]]) -> Path:
    """A bar per row and key in each panel, coloured by the row's section."""
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.0, 0.8 * len(rows)) * len(panels), 4.5), squeeze=False)
    sections = list(dict.fromkeys(key for key, _ in rows))
    colours = [f"C{sections.index(key)}" for key, _ in rows]
    for ax, (keys, ylabel) in zip(axes[0], panels):
        width = 0.8 / len(keys)
        for offset, key in enumerate(keys):
            positions = [i + (offset - (len(keys) - 1) / 2) * width for i in range(len(rows))]
            ax.bar(positions, [row.get(key) or 0.0 for _, row in rows], width, color=colours,
                   hatch="//" if offset else None, edgecolor="black", linewidth=0.5)
        ax.set_xticks(range(len(rows)), [row["label"] for _, row in rows], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
