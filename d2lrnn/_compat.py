"""Make MXNet 1.9.1 importable on the numpy versions d2lrnn supports, whoever imports it first.

MXNet 1.9.1 still says `np.bool`, an alias numpy 1.24 removed (Python 3.12 needs numpy 1.26), and it
cannot run on numpy 2. `install()` puts a finder in front of Python's import system that acts once,
when `mxnet` is first imported: it refuses numpy 2 with a message saying what to do and restores the
alias. It imports nothing until then, so `import d2lrnn` stays light (no MXNet, no numpy).
"""
import sys


def prepare_numpy():
    """Refuse numpy 2; restore numpy.bool (harmless where it exists)."""
    import numpy as np

    if int(np.__version__.split(".")[0]) >= 2:
        raise ImportError(
            f"MXNet 1.9.1 needs numpy < 2 (found {np.__version__}): it uses names numpy 2 removed. "
            "Run `pip install 'numpy<2'` and restart Python (on Colab: run the set-up cell, which restarts "
            "the runtime once).")
    if "bool" not in np.__dict__:
        np.bool = bool


class MXNetFirstImport:
    """A meta-path finder that prepares numpy the first time `mxnet` is imported, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name == "mxnet":
            sys.meta_path.remove(self)  # once is enough; and never in the way of the real import
            prepare_numpy()
        return None  # let the normal finders load it

    def __eq__(self, other):  # one hook per process, even if this module loads twice (a .pth and d2lrnn)
        return type(other).__name__ == type(self).__name__

    __hash__ = object.__hash__


def install():
    """Prepare numpy before MXNet loads: now if MXNet is already loaded, else at its first import."""
    if "mxnet" in sys.modules:
        return
    hook = MXNetFirstImport()
    if hook not in sys.meta_path:
        sys.meta_path.insert(0, hook)
