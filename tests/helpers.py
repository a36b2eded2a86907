"""What several test files, and benchmarks/bench_speed.py, share: paths, contexts, random weights, the
lecture's own RNN notebook code, and a watch on the device every new array lands on.

Fixtures are in conftest.py; this module holds plain names, so a benchmark can import it too
(`sys.path.insert(0, "tests")`).
"""
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import d2lrnn  # before MXNet: on Python 3.12 it restores numpy.bool first

# isort: split
import mxnet as mx
import numpy as np
from mxnet import nd

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"  # the course's corpora on these machines (D2LRNN_DATA_DIR)
TINY_TEXT = ("The Time Traveller (for so it will be convenient to speak of him)\n"
             "was expounding a recondite matter to us. His grey eyes shone and\n"
             "twinkled, and his usually pale face was flushed and animated.\n") * 4

CPU = mx.cpu()
# MXNet lets cpu(0) and cpu(1) arrays mix without a word, so a run on cpu(1) finds every array that
# would land on the wrong device on a GPU (COURSE_FACTS §4): the GPU path cannot be run here.
OTHER_CPU = mx.cpu(1)


# --- the lecture's RNN notebook, written the lecture's way ---------------------------------------
# The reference every faster path is checked against (and bench_speed's reference (a) trains): one
# time step at a time, three nd.dot per step, a get_params closure over the notebook's globals.

def notebook_get_params(vocab_size, num_hiddens, ctx):
    """The notebook's zero-argument get_params, closing over what the notebook keeps in globals."""
    num_inputs, num_outputs = vocab_size, vocab_size

    def get_params():
        def _one(shape):
            return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)

        W_xh = _one((num_inputs, num_hiddens))
        W_hh = _one((num_hiddens, num_hiddens))
        b_h = nd.zeros(num_hiddens, ctx=ctx)
        W_hq = _one((num_hiddens, num_outputs))
        b_q = nd.zeros(num_outputs, ctx=ctx)
        params = [W_xh, W_hh, b_h, W_hq, b_q]
        for param in params:
            param.attach_grad()
        return params

    return get_params


def init_rnn_state(batch_size, num_hiddens, ctx):
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx), )


def rnn(inputs, state, params):
    W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        H = nd.tanh(nd.dot(X, W_xh) + nd.dot(H, W_hh) + b_h)
        Y = nd.dot(H, W_hq) + b_q
        outputs.append(Y)
    return outputs, (H,)


# --- random weights and inputs --------------------------------------------------------------------

def randomize(arrays, *, seed=0, scale=0.5):
    """Overwrite arrays in place with N(0, scale) draws of their own seeded generator; returns them.

    Far from the N(0, 0.01) start, where every gate is nearly linear and mistakes hide."""
    rng = np.random.RandomState(seed)
    for a in arrays:
        a[:] = nd.array(rng.normal(scale=scale, size=a.shape), ctx=a.context, dtype=a.dtype)
    return arrays


def random_model(name, *, vocab_size, num_hiddens, seed=0, scale=0.5, ctx=CPU, **options):
    """A registry model with randomized weights."""
    model = d2lrnn.build_model(name, vocab_size=vocab_size, num_hiddens=num_hiddens, ctx=ctx, **options)
    randomize(model.param_arrays(), seed=seed, scale=scale)
    return model


def random_tokens(vocab_size, shape, *, seed=1, ctx=CPU):
    """An array of random token indices of the given shape."""
    return nd.array(np.random.RandomState(seed).randint(0, vocab_size, size=shape), ctx=ctx)


def random_state(model, batch_size, *, seed=2, ctx=CPU):
    """A model's state filled with N(0, 1) values instead of zeros."""
    return tuple(randomize(list(model.begin_state(batch_size=batch_size, ctx=ctx)), seed=seed, scale=1.0))


def arrays_with_grads(shapes, *, seed=0, scale=1.0, ctx=CPU):
    """Arrays of random values, each with a random gradient attached."""
    arrays = randomize([nd.zeros(s, ctx=ctx) for s in shapes], seed=seed, scale=scale)
    for a in arrays:
        a.attach_grad()
    randomize([a.grad for a in arrays], seed=seed + 1, scale=scale)
    return arrays


def numpy_arrays(arrays):
    """Copies of arrays as NumPy arrays (float64), e.g. a snapshot of weights or gradients."""
    return [a.asnumpy().astype(np.float64) for a in arrays]


# --- where arrays are created -----------------------------------------------------------------------

# Where MXNet itself puts arrays on cpu(0), whatever context it was asked for, and then copies the
# result where it belongs: the buffers of an autograd.Function's backward (a quirk of MXNet's CPU
# engine, which a GPU does not share), Gluon's parameter initialisation and nd.load.
MXNET_STAGING = {("backward_entry", "autograd.py"), ("_finish_deferred_init", "parameter.py"),
                 ("load", "utils.py")}


def _mxnet_staging():
    """True while MXNet is creating an array in one of the MXNET_STAGING places."""
    frame = sys._getframe(2)
    while frame is not None:
        if (frame.f_code.co_name, Path(frame.f_code.co_filename).name) in MXNET_STAGING \
                and "mxnet" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _caller():
    """file:line of the innermost d2lrnn or test frame that is creating an array."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "d2lrnn" in name or "/tests/" in name:
            return f"{Path(name).name}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return "MXNet"


@contextlib.contextmanager
def arrays_created_off(ctx):
    """Within the block, list (context, where) for every NDArray created on a context other than ctx."""
    strays, original = [], nd.NDArray.__init__

    def watched_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.context != ctx and not _mxnet_staging():
            strays.append((self.context, _caller()))

    nd.NDArray.__init__ = watched_init
    try:
        yield strays
    finally:
        nd.NDArray.__init__ = original


def assert_all_on(ctx, arrays, what="arrays"):
    """Every array is on ctx; the message lists the ones that are not."""
    arrays = list(arrays)
    wrong = [(i, a.context) for i, a in enumerate(arrays) if a.context != ctx]
    assert arrays and not wrong, f"{what} not on {ctx}: {wrong[:10]}"


_MAIN_JOB = """\
import resource, runpy, sys
sys.argv = ["d2lrnn", "train", *sys.argv[1:]]
try:
    runpy.run_module("d2lrnn", run_name="__main__")
except SystemExit as end:
    assert not end.code, end.code
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main_job_peak_kb(args, threads=1):
    """Peak RSS (kB) of `python -m d2lrnn train ARGS` in a fresh process (OMP_NUM_THREADS set ahead, so that
    the command need not restart itself to set it)."""
    out = subprocess.run([sys.executable, "-c", _MAIN_JOB, *args], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if out.returncode:
        raise RuntimeError(f"d2lrnn train {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return int(next(x for x in out.stdout.splitlines() if x.startswith("PEAK ")).split()[1])
