"""Devices and seeds."""
import random

import numpy as np

from . import _compat  # noqa: F401
import mxnet as mx
from mxnet import nd


def _gpu_works(i):
    """True if MXNet can allocate on gpu(i)."""
    try:
        nd.zeros((1,), ctx=mx.gpu(i)).asnumpy()
        return True
    except Exception:  # CPU-only build, no driver, no device
        return False


def num_gpus():
    """Number of GPUs MXNet can use (0 with the CPU build)."""
    try:
        count = mx.context.num_gpus()
    except Exception:
        return 0
    return sum(_gpu_works(i) for i in range(count))


def try_gpu():
    """mx.gpu(0) if MXNet can use it, else mx.cpu()."""
    return mx.gpu(0) if num_gpus() > 0 else mx.cpu()


def try_all_gpus():
    """All usable GPUs, or [mx.cpu()] if there are none."""
    n = num_gpus()
    return [mx.gpu(i) for i in range(n)] if n else [mx.cpu()]


def set_seed(seed):
    """Seed Python, NumPy and MXNet (every device) so runs repeat."""
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)
