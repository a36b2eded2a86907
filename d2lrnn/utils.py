"""Devices, seeds, file digests, and the error type for mistakes a user can fix."""
import hashlib
import json
import random

import mxnet as mx
import numpy as np
from mxnet import nd


class UserError(Exception):
    """A mistake in the user's input or files: reported in one line that says what to do."""

    exit_code = 2  # the command line's status for a mistake

    def __init__(self, message="", exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def file_digest(path, algorithm):
    """Hex digest of a file ('sha1', 'sha256', ...), read in blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _gpu_works(i):
    """True if MXNet can allocate on gpu(i)."""
    try:
        nd.zeros((1,), ctx=mx.gpu(i)).asnumpy()
        return True
    except Exception:  # CPU-only build, no driver, no device
        return False


def usable_gpus():
    """The ids of the GPUs MXNet can allocate on (none with the CPU build)."""
    try:
        count = mx.context.num_gpus()
    except Exception:
        return []
    return [i for i in range(count) if _gpu_works(i)]


def num_gpus():
    """Number of GPUs MXNet can use (0 with the CPU build)."""
    return len(usable_gpus())


def try_gpu():
    """mx.gpu(0) if MXNet can use it, else mx.cpu()."""
    return mx.gpu(0) if 0 in usable_gpus() else mx.cpu()


def try_all_gpus():
    """Every GPU MXNet can use (skipping any that fails), or [mx.cpu()] if there is none."""
    return [mx.gpu(i) for i in usable_gpus()] or [mx.cpu()]


def set_seed(seed):
    """Seed Python, NumPy and MXNet (every device) so runs repeat."""
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def quoted(path):
    """A path for a one-line message: in double quotes, with newlines and other control characters escaped
    (and bytes that are not UTF-8, which Python holds as lone surrogates, as \\xNN)."""
    return json.dumps(str(path), ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")
