"""Seconds per epoch of the lecture's RNN configuration: lecture-era reference vs d2lrnn.

Trains the lecture configuration (512 hidden units, 35 steps, batch 32, lr 100, clipping 0.01,
sequential minibatches, first 10,000 characters of The Time Machine) with

  (a) ref     the lecture-era helpers, d2lzh==1.0.0 (`pip install --no-deps d2lzh==1.0.0` plus
              ipython, which it imports), driven by the lecture notebook's rnn/get_params (tests/helpers.py);
  (b0) autograd  the same call with d2lrnn's rnn/get_params as it runs by default: the lecture's step
              function trained with autograd;
  (b) d2lrnn  the same call with backward="by-hand" (printed when used): d2lrnn's rnn cell batched, the
              backward pass through time written by hand, the per-step work in single MXNet operators;
  (c) gluon   d2lrnn's concise path: RNNModel(rnn.RNN(512)) + train_and_predict_rnn_gluon;
  (d) floor   no training at all: only the matrix products an epoch of (b) cannot avoid, to show
              how close (b) is to what the arithmetic allows on this machine.

Every run is a fresh subprocess; they alternate (the order rotates from pair to pair) and pair i uses
seed + i for all of them, so each pair starts from the same weights and reads the same data.
Prints seconds per epoch (median over epochs 2..E, the first epoch is warm-up), the ratio ref/x pair
by pair and its median, the peak RSS of each child and the perplexity at the last epoch.

    python benchmarks/bench_speed.py                 # 3 pairs of 8 epochs
    python benchmarks/bench_speed.py --pairs 5 --epochs 8
    python benchmarks/bench_speed.py --memory-check  # d2lrnn: peak RSS of 50 epochs vs 5 epochs

The corpus is found like d2lrnn finds it (set D2LRNN_DATA_DIR to the folder with timemachine.txt).
Exit status 1 when a requirement fails: (b) at least 3x faster than (a) (median of pairs) with
last-epoch perplexities within 1 %, or (memory check) 50-epoch peak within 10 % of the 5-epoch one.
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# tests/helpers.py holds the lecture's notebook cell, which (a) trains
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

CONFIG = dict(num_hiddens=512, num_steps=35, batch_size=32, lr=1e2, clipping_theta=1e-2)
IMPLS = ("ref", "autograd", "d2lrnn", "gluon")
LINE = re.compile(r"epoch (\d+), perplexity ([0-9.]+), time")


class EpochClock:
    """A stdout stand-in that timestamps every 'epoch N, perplexity P, time T sec' line."""

    def __init__(self, out):
        self.out, self.marks = out, []

    def write(self, s):
        m = LINE.search(s)
        if m:
            self.marks.append((time.perf_counter(), int(m.group(1)), float(m.group(2))))
        return self.out.write(s)

    def flush(self):
        self.out.flush()


# ----------------------------------------------------------------------------------------------
# (a) the lecture's notebook, written the way the lecture writes it (tests/helpers.py): globals and closures
def run_reference(corpus, epochs):
    import d2lzh as d2l  # the lecture-era helper module
    import mxnet as mx

    from helpers import init_rnn_state, notebook_get_params, rnn

    corpus_indices, char_to_idx, idx_to_char = corpus["indices"], corpus["char_to_idx"], corpus["idx_to_char"]
    vocab_size, num_hiddens, ctx = len(idx_to_char), CONFIG["num_hiddens"], mx.cpu()
    get_params = notebook_get_params(vocab_size, num_hiddens, ctx)
    d2l.train_and_predict_rnn(rnn, get_params, init_rnn_state, num_hiddens, vocab_size, ctx,
                              corpus_indices, idx_to_char, char_to_idx, False, epochs,
                              CONFIG["num_steps"], CONFIG["lr"], CONFIG["clipping_theta"],
                              CONFIG["batch_size"], 1, 0, [])


# (b0) the same call as the lecture's, d2lrnn's own rnn: what runs by default, the step function with autograd
def run_autograd(corpus, epochs):
    run_d2lrnn(corpus, epochs, backward="autograd")


# (b) d2lrnn from scratch: the lecture's call with d2lrnn's cell, backward through time by hand (the
# documented, printed switch backward="by-hand")
def run_d2lrnn(corpus, epochs, backward="by-hand"):
    import mxnet as mx

    import d2lrnn as d2l

    vocab_size = len(corpus["idx_to_char"])
    d2l.train_and_predict_rnn(d2l.rnn, d2l.get_params, d2l.init_rnn_state, CONFIG["num_hiddens"],
                              vocab_size, mx.cpu(), corpus["indices"], corpus["idx_to_char"],
                              corpus["char_to_idx"], False, epochs, CONFIG["num_steps"], CONFIG["lr"],
                              CONFIG["clipping_theta"], CONFIG["batch_size"], 1, 0, [], backward=backward)


# (c) d2lrnn's concise Gluon path
def run_gluon(corpus, epochs):
    import mxnet as mx
    from mxnet.gluon import rnn

    import d2lrnn as d2l

    vocab_size = len(corpus["idx_to_char"])
    model = d2l.RNNModel(rnn.RNN(CONFIG["num_hiddens"]), vocab_size)
    d2l.train_and_predict_rnn_gluon(model, CONFIG["num_hiddens"], vocab_size, mx.cpu(), corpus["indices"],
                                    corpus["idx_to_char"], corpus["char_to_idx"], epochs,
                                    CONFIG["num_steps"], CONFIG["lr"], CONFIG["clipping_theta"],
                                    CONFIG["batch_size"], 1, 0, [])


# (d) the arithmetic floor of (b): its unavoidable matrix products, and nothing else
def run_floor(corpus, epochs):
    """Per minibatch: 35 chained state products forward and 35 back, W_hh's gradient, the output layer."""
    from mxnet import nd

    from d2lrnn.cells.ops import linear, outer  # the products (b) uses (nd.FullyConnected)

    n, V = CONFIG["num_hiddens"], len(corpus["idx_to_char"])
    T, B = CONFIG["num_steps"], CONFIG["batch_size"]
    batches = (len(corpus["indices"]) // B - 1) // T  # as data_iter_consecutive cuts the text
    W = nd.random.normal(scale=n ** -0.5, shape=(n, n))  # keeps a chained state's size roughly steady
    H0 = nd.random.normal(shape=(B, n))
    Z, W_hq, dO = (nd.random.normal(shape=s) for s in ((T * B, n), (n, V), (T * B, V)))
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        for _ in range(batches):
            H = H0
            for _ in range(2 * T):   # each step needs the last: H W_hh forward, dA W_hh^T back
                H = linear(H, W)     # (batch, hidden)
            outer(Z, Z)                                 # dW_hh: (hidden, steps * batch) x (steps * batch, n)
            linear(Z, W_hq.T)                           # logits: (steps * batch, vocab)
            outer(Z, dO)                                # dW_hq: (hidden, vocab)
            linear(dO, W_hq)                            # dZ: (steps * batch, hidden)
        nd.waitall()
        print(f"epoch {epoch}, perplexity 0, time {time.perf_counter() - start:.2f} sec")


RUNNERS = {"ref": run_reference, "autograd": run_autograd, "d2lrnn": run_d2lrnn, "gluon": run_gluon,
           "floor": run_floor}


def child(impl, seed, epochs, corpus_file):
    """Run one implementation in this (fresh) process and print one JSON line of results."""
    import random

    import numpy as np

    if "bool" not in np.__dict__:  # MXNet 1.9.1 on numpy >= 1.24 (d2lrnn does the same)
        np.bool = bool
    import mxnet as mx

    with open(corpus_file) as f:
        corpus = json.load(f)
    __import__("d2lzh" if impl == "ref" else "d2lrnn")  # imports stay out of the first epoch's time
    __import__("helpers")
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)
    clock = EpochClock(sys.stdout)
    real_stdout, sys.stdout = sys.stdout, clock
    start = time.perf_counter()
    try:
        RUNNERS[impl](corpus, epochs)
    finally:
        sys.stdout = real_stdout
    stamps = [start] + [t for t, _, _ in clock.marks]
    seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    print("RESULT " + json.dumps(dict(impl=impl, seed=seed, seconds=seconds,
                                      perplexity=[p for _, _, p in clock.marks], peak_mb=peak_mb)))


# ----------------------------------------------------------------------------------------------
def spawn(impl, seed, epochs, corpus_file):
    """Run `child` in a fresh interpreter; return its result dict."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", impl, "--seed", str(seed),
           "--epochs", str(epochs), "--corpus-file", corpus_file]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.exit(f"{impl} (seed {seed}) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def per_epoch(result):
    """Median seconds per epoch, leaving out the first (warm-up) epoch when there are others."""
    s = result["seconds"]
    return statistics.median(s[1:] if len(s) > 1 else s)


def write_corpus():
    """Load the corpus once with d2lrnn (deterministic vocabulary) and hand it to the children."""
    import d2lrnn

    indices, char_to_idx, idx_to_char, _ = d2lrnn.load_data_time_machine()
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(dict(indices=indices.tolist(), char_to_idx=char_to_idx, idx_to_char=list(idx_to_char)), f)
    f.close()
    return f.name


def environment():
    import platform

    load = os.getloadavg()
    keys = ("OMP_NUM_THREADS", "MXNET_ENGINE_TYPE", "MXNET_CPU_WORKER_NTHREADS")
    env = ", ".join(f"{k}={os.environ[k]}" for k in keys if k in os.environ) or "no thread settings"
    return (f"python {platform.python_version()}, {os.cpu_count()} CPUs, {env}, "
            f"load average {load[0]:.2f}")


def speed(args, corpus_file):
    cfg = ", ".join(f"{k}={v}" for k, v in CONFIG.items())
    print(f"lecture configuration ({cfg}, sequential), {args.epochs} epochs, {args.pairs} pairs")
    print(environment())
    runs = {impl: [] for impl in RUNNERS}  # (a)-(c), and the floor (d)
    for i in range(args.pairs):
        order = IMPLS[i % len(IMPLS):] + IMPLS[:i % len(IMPLS)]  # rotate who goes first
        for impl in order + ("floor",):
            r = spawn(impl, args.seed + i, args.epochs, corpus_file)
            runs[impl].append(r)
            print(f"  pair {i + 1} seed {args.seed + i} {impl:7s} {per_epoch(r):.3f} s/epoch, "
                  f"perplexity {r['perplexity'][-1]:.4f}, peak {r['peak_mb']:.0f} MB", flush=True)
    print()
    print(f"{'':28s} {'s/epoch':>8s} {'speed-up vs (a)':>16s} {'perplexity @' + str(args.epochs):>15s} "
          f"{'peak RSS':>9s}")
    names = {"ref": "(a) lecture reference d2lzh", "autograd": "(b0) d2lrnn, autograd",
             "d2lrnn": "(b) d2lrnn, backward by hand", "gluon": "(c) d2lrnn Gluon rnn.RNN"}
    ratios, ok = {}, True
    for impl in IMPLS:
        sec = statistics.median(per_epoch(r) for r in runs[impl])
        ratios[impl] = statistics.median(per_epoch(a) / per_epoch(r) for a, r in zip(runs["ref"], runs[impl]))
        ppl = statistics.median(r["perplexity"][-1] for r in runs[impl])
        mem = max(r["peak_mb"] for r in runs[impl])
        print(f"{names[impl]:28s} {sec:8.3f} {ratios[impl]:15.2f}x {ppl:15.4f} {mem:7.0f} MB")
    gaps = [abs(b["perplexity"][-1] / a["perplexity"][-1] - 1) for a, b in zip(runs["ref"], runs["d2lrnn"])]
    print()
    print(f"(b)/(a) speed-up, median of pairs: {ratios['d2lrnn']:.2f}x (need >= 3.0); "
          f"largest perplexity gap in a pair: {100 * max(gaps):.2f} % (need <= 1 %)")
    if ratios["d2lrnn"] < 3.0 or max(gaps) > 0.01:
        ok = False
    g = statistics.median(per_epoch(r) for r in runs["d2lrnn"]) / statistics.median(
        per_epoch(r) for r in runs["gluon"])
    print(f"(b) / (c) seconds per epoch: {g:.2f} (1.00 = as fast as the fused layer)")
    floor = statistics.median(per_epoch(r) for r in runs["floor"])
    target = statistics.median(per_epoch(r) for r in runs["ref"]) / 3
    print(f"(d) the matrix products alone take {floor:.3f} s/epoch: (b) spends "
          f"{statistics.median(per_epoch(r) for r in runs['d2lrnn']) / floor:.2f}x that; 3x (a) would be "
          f"{target:.3f} s/epoch, {target / floor:.2f}x the products' time")
    minutes = {impl: 500 * statistics.median(per_epoch(r) for r in runs[impl]) / 60 for impl in IMPLS}
    print(f"a 500-epoch run costs about {minutes['d2lrnn']:.1f} min with (b) vs {minutes['ref']:.1f} min "
          "with (a)")
    print("PASS" if ok else "FAIL")
    return ok


def memory(args, corpus_file):
    print(environment())
    ok = True
    for impl in ("d2lrnn", "gluon"):
        short = spawn(impl, args.seed, 5, corpus_file)
        long = spawn(impl, args.seed, 50, corpus_file)
        growth = long["peak_mb"] / short["peak_mb"] - 1
        print(f"{impl:7s} peak RSS: 5 epochs {short['peak_mb']:.0f} MB, 50 epochs {long['peak_mb']:.0f} MB "
              f"({100 * growth:+.1f} %, need within 10 %); perplexity at 50: {long['perplexity'][-1]:.3f}")
        ok = ok and abs(growth) <= 0.10
    print("PASS" if ok else "FAIL")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-check", action="store_true", help="peak RSS of 50 vs 5 epochs instead")
    ap.add_argument("--child", choices=list(RUNNERS), help=argparse.SUPPRESS)
    ap.add_argument("--corpus-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.seed, args.epochs, args.corpus_file)
    corpus_file = write_corpus()
    try:
        ok = memory(args, corpus_file) if args.memory_check else speed(args, corpus_file)
    finally:
        os.unlink(corpus_file)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
