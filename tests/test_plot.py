"""Plots: one curve per history, dashed held-out curves, the uniform baseline, plain tick labels."""
import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

import d2lrnn  # noqa: E402


def _history(ppl, val=None):
    h = d2lrnn.History()
    for i, p in enumerate(ppl):
        h.add(p, 0.1, None if val is None else val[i])
    return h


def test_curves_legend_and_ticks():
    ax = Figure().add_subplot()
    d2lrnn.plot_perplexity({"random": _history([30, 10, 5]), "sequential": _history([30, 8, 3], [31, 12, 9])},
                           ax=ax, baseline=43)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["random train", "sequential train", "sequential held-out", "uniform guess (43)"]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [31, 12, 9]
    assert ax.get_yscale() == "log" and ax.yaxis.get_major_formatter()(10, 0) == "10"
