"""Make MXNet 1.9.1 importable on the numpy versions d2lrnn supports."""
import numpy as np

# MXNet 1.9.1 still says `np.bool`, an alias numpy 1.24 removed. Restoring it is harmless on
# older numpy (where it exists) and needed on Python 3.12 (numpy 1.26). numpy 2 is refused.
if int(np.__version__.split(".")[0]) >= 2:
    raise ImportError(
        f"d2lrnn needs numpy < 2 (found {np.__version__}): MXNet 1.9.1 uses names numpy 2 removed. "
        "Run `pip install 'numpy<2'` and restart Python (on Colab: Runtime > Restart session)."
    )
if "bool" not in np.__dict__:
    np.bool = bool

import mxnet  # noqa: E402,F401  (imported here so every module sees the shim first)
