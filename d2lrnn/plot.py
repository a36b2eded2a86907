"""Plots: perplexity curves shared by the notebooks and the command line."""
import math

from .utils import UserError


def _as_dict(histories):
    """Accept one History or a {label: History} mapping."""
    return histories if isinstance(histories, dict) else {"": histories}


def plain_log_ticks(ax, axis="y"):
    """Label a log axis with plain numbers (20, 50, 100), always several, never 2x10^1.

    On a y axis that scales itself, the lower end moves down to the next labelled tick when the lowest
    values would otherwise have no number near them. Call it again after adding lines."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

    target = ax.yaxis if axis == "y" else ax.xaxis
    low, high = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    if low > 0 and high / low < 5:  # less than a decade: a few evenly chosen round numbers
        target.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        target.set_minor_locator(NullLocator())
    elif high / low < 1e4:          # 1, 2, 5, 10, 20, 50, ...
        target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        target.set_minor_locator(LogLocator(base=10, subs=range(1, 10)))
    else:                           # many decades: powers of ten, thinned to at most 8 labels
        target.set_major_locator(LogLocator(base=10, numticks=8))
        target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())
    ticks = [t for t in target.get_major_locator().tick_values(low, high) if t > 0]
    below, inside = [t for t in ticks if t <= low * (1 + 1e-9)], [t for t in ticks if low <= t <= high]
    bare_bottom = not inside or min(inside) > 1.25 * low  # the lowest values would have no number near them
    if axis == "y" and below and bare_bottom and high / low < 1e4 and ax.get_autoscaley_on():
        limits = (max(below), high)[::-1 if ax.yaxis.get_inverted() else 1]
        ax.set_ylim(*limits, auto=None)  # auto=None: lines added later still rescale the axis


def plot_perplexity(histories, ax=None, title="Perplexity per epoch", logy=True, baseline=None):
    """Plot training (solid) and held-out (dashed) perplexity; returns the matplotlib Axes."""
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, h in _as_dict(histories).items():
        name = f"{label}: " if label else ""
        line, = ax.plot(h.epoch, h.perplexity, lw=1.6, label=f"{name}training text (solid)")
        measured = [(e, v) for e, v in zip(h.epoch, h.val_perplexity) if v is not None and math.isfinite(v)]
        if measured:  # joined across rows where it was not measured
            ax.plot(*zip(*measured), ls=(0, (5, 2)), lw=1.6, color=line.get_color(), alpha=0.85,
                    marker="." if len(measured) < 30 else None, label=f"{name}held-out text (dashed)")
    if baseline is not None:
        ax.axhline(baseline, color="gray", lw=0.8, ls=":", label=f"uniform guess ({baseline})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity" + (" (log scale)" if logy else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
        plain_log_ticks(ax)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def check_can_draw():
    """Raise a one-line error now, not after training, when matplotlib cannot draw (e.g. a bad MPLBACKEND)."""
    import io

    try:
        from matplotlib.figure import Figure

        Figure(figsize=(1, 1)).savefig(io.BytesIO(), format="png")
    except Exception as err:  # matplotlib raises ValueError, ImportError, ... depending on what is wrong
        raise UserError(f"matplotlib cannot draw the perplexity curve ({type(err).__name__}: "
                        f"{str(err)[:200]}); fix MPLBACKEND or matplotlib first") from None


def save_perplexity_plot(history, path, baseline=None, file_format=None):
    """Draw the perplexity curve into an image file (PNG unless its name says otherwise), with no display."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), tight_layout=True)
    plot_perplexity(history, ax=fig.add_subplot(), baseline=baseline)
    fig.savefig(path, dpi=120, format=file_format)


class LivePlot:
    """A training hook that redraws the perplexity curve in place in a notebook every `period` epochs."""

    def __init__(self, period=1):
        self.period, self.handle = period, None

    def on_batch(self, progress):
        return False

    def on_epoch(self, progress):
        if progress.batch == progress.batches and progress.epoch % self.period == 0:
            self.draw(progress.history)

    def draw(self, history):
        """Draw (or redraw) the curve of `history`."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig, ax = plt.subplots(figsize=(6, 3.5))
        plot_perplexity(history, ax=ax)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)
