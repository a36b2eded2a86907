"""Plots: one curve per history, dashed held-out curves joined across gaps, the uniform baseline,
several plain tick labels on log axes whatever the range, whole-number epochs."""
import math

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import d2lrnn  # noqa: E402


def _history(ppl, val=None):
    h = d2lrnn.History()
    for i, p in enumerate(ppl):
        h.add(p, 0.1, None if val is None else val[i])
    return h


def _labels(ax, axis="y"):
    ax.figure.draw_without_rendering()  # lay out ticks and labels (a bare Figure has no real canvas)
    ticks = ax.yaxis.get_major_ticks() if axis == "y" else ax.xaxis.get_major_ticks()
    low, high = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    texts = [t.label1.get_text() for t in ticks]
    return [t for t in texts if t and low <= float(t) <= high]


def test_curves_legend_and_line_styles():
    ax = Figure().add_subplot()
    d2lrnn.plot_perplexity({"random": _history([30, 10, 5]), "sequential": _history([30, 8, 3], [31, 12, 9])},
                           ax=ax, baseline=43)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["random: training text (solid)", "sequential: training text (solid)",
                      "sequential: held-out text (dashed)", "uniform guess (43)"]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() not in ("-", ":")]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [31, 12, 9]


@pytest.mark.parametrize("values", [[21.0, 17.5, 14.2, 12.9], [1.32, 1.21, 1.17, 1.15], [43, 20, 5, 1.1],
                                    [1e27, 1e12, 40, 3]], ids=["fast mode", "narrow", "wide", "many decades"])
def test_log_axis_has_several_plain_labels(values):
    ax = Figure().add_subplot()
    d2lrnn.plot_perplexity(_history(values), ax=ax)
    labels = _labels(ax)
    assert len(labels) >= 3, labels
    assert all("times" not in t and "^" not in t and "×" not in t for t in labels)
    epochs = _labels(ax, "x")
    assert epochs == [str(e) for e in range(1, 5)] or all(float(t) == int(float(t)) for t in epochs)


def test_held_out_points_are_joined_across_rows_without_them():
    h = d2lrnn.History()
    for e in range(4):
        h.add(10 - e, 1.0, 12 - e, fraction=0.5)  # a measurement within the epoch ...
        h.add(9.5 - e, 1.0)                        # ... and an epoch end without one
    ax = Figure().add_subplot()
    d2lrnn.plot_perplexity(h, ax=ax)
    dashed = [line for line in ax.get_lines() if line.get_linestyle() not in ("-", ":")][0]
    assert list(dashed.get_xdata()) == [0.5, 1.5, 2.5, 3.5]
    assert not any(math.isnan(v) for v in dashed.get_ydata())
