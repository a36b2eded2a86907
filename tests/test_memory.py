"""Peak memory does not grow with the length of an epoch: Python waits on the loss LAG minibatches
back, so MXNet's queue of pending work (and its buffers) stays bounded. Each run is a fresh process.

Without the bound (LAG huge) the same measurement grows by about a sixth from N to 4N characters on
the 2-core machines here, so the 10 % check can fail; `benchmarks/bench_scale.py --memory` repeats it
at the homework's scale.
"""
import subprocess
import sys
import textwrap

import pytest

from conftest import SHARED_DATA

SCRIPT = textwrap.dedent("""
    import resource, sys
    import d2lrnn, mxnet as mx
    from d2lrnn import training
    chars, lag = int(sys.argv[1]), sys.argv[2]
    if lag != "default":
        training.LAG = int(lag)
    text = d2lrnn.data.read_text(sys.argv[3])
    corpus, _, _, vocab = d2lrnn.corpus_from_text((text * 2)[:chars], None, preprocess_style="raw")
    model = d2lrnn.build_model("rnn", vocab_size=vocab, num_hiddens=256, ctx=mx.cpu())
    training.train_epoch(model, corpus, d2lrnn.SGD(model.param_arrays(), lr=1.0), ctx=mx.cpu(), num_steps=35,
                         batch_size=32, clipping_theta=0.01)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB on Linux
""")


def peak_kb(chars, lag="default"):
    corpus = SHARED_DATA / "tinyshakespeare.txt"
    if not corpus.is_file():
        pytest.skip("needs ../shared/data/tinyshakespeare.txt")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(chars), lag, str(corpus)], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in kB is Linux's")
def test_peak_memory_is_flat_in_epoch_length():
    small, large = peak_kb(30_000), peak_kb(120_000)
    assert large <= 1.10 * small, f"peak RSS grew from {small // 1024} MB to {large // 1024} MB"
