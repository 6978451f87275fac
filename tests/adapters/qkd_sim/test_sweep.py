"""The rate-vs-distance figure of ``qkms simulate --sweep``."""

from adapters.qkd_sim import preset
from adapters.qkd_sim.sweep import SweepPoint, plot_sweep, pyplot, sweep_figure

GYS = preset("gys")
ASYMPTOTIC = "simulated, asymptotic estimate from MC counts"
FINITE = "simulated, finite-key (Lim et al. 2014)"


def legend_texts(points: list[SweepPoint]) -> list[str]:
    figure = sweep_figure(GYS, points, max_km=100.0)
    texts = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    pyplot().close(figure)
    return texts


def test_a_series_without_a_plotted_point_has_no_legend_entry() -> None:
    # Short runs leave no finite-key length at any distance: nothing to plot on a log axis.
    points = [SweepPoint(length, 1e-4, 0.0) for length in (0.0, 25.0, 50.0)]
    texts = legend_texts(points)
    assert ASYMPTOTIC in texts
    assert FINITE not in texts


def test_a_series_with_one_plotted_point_is_in_the_legend() -> None:
    points = [SweepPoint(0.0, 1e-4, 2e-5), SweepPoint(50.0, 1e-5, 0.0)]
    assert {ASYMPTOTIC, FINITE} <= set(legend_texts(points))


def test_every_analytic_curve_is_in_the_legend() -> None:
    texts = legend_texts([])
    assert len(texts) == 4 and any(text.startswith("PLOB bound") for text in texts)


def test_plot_sweep_writes_png_and_svg(tmp_path) -> None:
    paths = plot_sweep(GYS, [SweepPoint(10.0, 1e-4, 0.0)], str(tmp_path / "rate"), max_km=50.0)
    assert [path.name for path in paths] == ["rate.png", "rate.svg"]
    assert all(path.stat().st_size > 1000 for path in paths)
