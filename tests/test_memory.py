"""Peak memory does not grow with the length of an epoch: Python waits on the loss `lag` minibatches
back (TrainOptions.lag), so MXNet's queue of pending work (and its buffers) stays bounded. Each run is a
fresh process.

Without the bound (a huge lag, as in
`python tests/test_memory.py 120000 1000000 rnn-bptt ../shared/data/tinyshakespeare.txt`, which prints
the peak in kB) the same measurement grows by about a sixth from N to 4N characters on the 2-core machines
here, so the 10 % check can fail; `benchmarks/bench_scale.py --memory` repeats it at the homework's scale.
"""
import resource
import subprocess
import sys

import pytest

from helpers import main_job_peak_kb

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                   reason="ru_maxrss in kB is Linux's")]


def one_epoch(chars, lag, name, path):
    """Train `name` (hidden 256, the lecture's minibatches) for one epoch over `chars` characters of the
    text at `path`; print the peak RSS in kB."""
    import mxnet as mx

    import d2lrnn
    from d2lrnn.training import TrainOptions, train_epoch

    text = d2lrnn.data.read_text(path)
    corpus, _, _, vocab = d2lrnn.corpus_from_text((text * 2)[:chars], None, preprocess_style="raw")
    model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=256, ctx=mx.cpu())
    options = TrainOptions(num_steps=35, batch_size=32, lr=1.0, clipping_theta=0.01, lag=lag)
    train_epoch(model, corpus, d2lrnn.SGD(model.param_arrays(), lr=options.lr), options, ctx=mx.cpu())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_kb(chars, name, path, lag=None):
    from d2lrnn.training import LAG

    out = subprocess.run([sys.executable, __file__, str(chars), str(lag or LAG), name, str(path)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["rnn", "rnn-bptt"])
def test_peak_memory_is_flat_in_epoch_length(shakespeare, name):
    small, large = peak_kb(30_000, name, shakespeare), peak_kb(120_000, name, shakespeare)
    assert large <= 1.10 * small, f"peak RSS grew from {small // 1024} MB to {large // 1024} MB"



def main_job_peak(chars, shakespeare, tmp_path):
    """Peak RSS (kB) of the whole main job on `chars` characters: read, split, train an epoch, score, save."""
    path = tmp_path / f"text{chars}.txt"
    path.write_text((shakespeare.read_text(encoding="utf-8") * 4)[:chars], encoding="utf-8")
    return main_job_peak_kb(["--text", str(path), "--preprocess", "raw", "--val-fraction", "0.1",
                             "--model", "rnn-bptt", "--hidden", "32", "--steps", "35", "--batch-size", "32",
                             "--epochs", "1", "--lr", "1", "--out", str(tmp_path / f"run{chars}")])


def test_the_main_job_needs_at_most_ten_bytes_a_character(shakespeare, tmp_path):
    """The corpus costs 4 bytes a character (int32 indices); reading, splitting and iterating add no copy
    of the text that lives on: from N to 4N characters the peak grows by at most 10 bytes a character."""
    small, large = (main_job_peak(n, shakespeare, tmp_path) for n in (400_000, 1_600_000))
    per_char = (large - small) * 1024 / 1_200_000
    assert per_char <= 10, f"peak RSS grew by {per_char:.1f} bytes a character ({small} kB -> {large} kB)"


if __name__ == "__main__":
    one_epoch(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
