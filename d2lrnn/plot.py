"""Plots: perplexity curves shared by the notebooks and the command line."""
import math


def _as_dict(histories):
    """Accept one History or a {label: History} mapping."""
    return histories if isinstance(histories, dict) else {"": histories}


def plot_perplexity(histories, ax=None, title="Perplexity per epoch", logy=True, baseline=None):
    """Plot training (solid) and held-out (dashed) perplexity; returns the matplotlib Axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, h in _as_dict(histories).items():
        name = f"{label} " if label else ""
        line, = ax.plot(h.epoch, h.perplexity, label=f"{name}train")
        if h.has_val():
            val = [math.nan if v is None else v for v in h.val_perplexity]  # a gap where not measured
            ax.plot(h.epoch, val, "--", color=line.get_color(), label=f"{name}held-out")
    if baseline is not None:
        ax.axhline(baseline, color="gray", lw=0.8, ls=":", label=f"uniform guess ({baseline})")
    if logy:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")  # plain numbers (1, 2, 5, 10, 20, 50) instead of 2x10^1
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def save_perplexity_plot(history, path, baseline=None, file_format=None):
    """Draw the perplexity curve into an image file (PNG unless the name says otherwise), no display needed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), tight_layout=True)
    plot_perplexity(history, ax=fig.add_subplot(), baseline=baseline)
    fig.savefig(path, dpi=120, format=file_format)


class LivePlot:
    """Redraw the perplexity curve in place while a notebook trains."""

    def __init__(self):
        self.handle = None

    def __call__(self, history):
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig, ax = plt.subplots(figsize=(6, 3.5))
        plot_perplexity(history, ax=ax)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)
