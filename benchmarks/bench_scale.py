"""Characters per second at the homework's scale: RNN, GRU, LSTM and two-layer LSTM, from scratch and fused.

Every measurement is a fresh process that trains one epoch (hidden 256, 35 steps, batch 32, one-hot
input, sequential minibatches, the lecture's SGD with lr 100 and theta 0.01) over the first --chars
characters of Tiny Shakespeare (raw, repeated when more is asked for than it has), through d2lrnn's
one training loop. Implementations alternate and repeat; the table shows medians.

    python benchmarks/bench_scale.py                      # 300,000 characters, 3 rounds, 1 and 2 threads
    python benchmarks/bench_scale.py --memory             # the main job's peak RSS at N and 4N characters
    python benchmarks/bench_scale.py --memory --chars 1175000   # ... up to 4.7M characters

Throughput is also given as a fraction of this CPU's matrix-multiply rate: the floating-point work
of the lecture's equations per character (forward and backward, one-hot products counted as dense,
from the shapes) times characters per second, divided by the rate of one large FullyConnected
(1024 x 1024 by 1024 x 4096) timed in the same process. Run it on an otherwise idle machine.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HIDDEN, STEPS, BATCH = 256, 35, 32
MODELS = {  # label -> (cell, layers)
    "RNN": ("rnn", 1), "GRU": ("gru", 1), "LSTM": ("lstm", 1), "2-layer LSTM": ("lstm", 2),
}
IMPLS = {  # how each implementation is built
    "lecture": "the registry's rnn, gru, lstm: the lecture's step function with autograd (one layer only)",
    "scratch": "the registry's *-bptt cells: batched, backward through time by hand (d2lrnn/cells/)",
    "fused": "the registry's fused models: MXNet's RNN operator on one flat parameter (model.FusedLayer)",
    "gluon": "the lecture's RNNModel around a gluon.rnn layer (the operator plus Gluon's per-call concat)",
    "torch": "the reference: torch.nn.RNN/GRU/LSTM on the CPU, same shapes and loop (needs --torch-python)",
}
TORCH_REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.py")
PICKS = {  # what `d2lrnn train --model NAME` runs for each cell, and why (the README's table says the same)
    "lecture": "rnn/gru/lstm: the lecture's own step function, to be read and changed",
    "scratch": "*-bptt: the same cell batched, backward by hand: layers, embedding, dropout; faster",
    "fused": "gluon-*: MXNet's fused operator (oneDNN), the fastest for every cell on a CPU",
}


def runs_as(label, impl):
    """False for a combination the registry refuses: the lecture's cells have one layer."""
    return impl != "lecture" or MODELS[label][1] == 1


def flops_per_char(cell, layers, vocab):
    """Multiply-adds x 2 of the lecture's equations for one character, forward plus backward (x 3)."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    per_layer = [2 * (inputs + HIDDEN) * gates * HIDDEN for inputs in [vocab] + [HIDDEN] * (layers - 1)]
    return 3 * (sum(per_layer) + 2 * HIDDEN * vocab)


def matmul_rate():
    """GFLOP/s of one large FullyConnected on this machine, now."""
    from mxnet import nd

    X, W = nd.random.normal(shape=(4096, 1024)), nd.random.normal(shape=(1024, 1024))
    nd.FullyConnected(X, W, no_bias=True, num_hidden=1024).wait_to_read()
    start, n = time.perf_counter(), 10
    for _ in range(n):
        Y = nd.FullyConnected(X, W, no_bias=True, num_hidden=1024)
    Y.wait_to_read()
    return n * 2 * 4096 * 1024 * 1024 / (time.perf_counter() - start) / 1e9


def child(label, impl, chars):
    """One epoch in this process; prints a JSON line with characters per second and peak RSS."""
    import mxnet as mx
    import numpy as np

    import d2lrnn
    from d2lrnn.training import TrainOptions, train_epoch

    ctx = mx.cpu()
    text = d2lrnn.data.read_text(d2lrnn.get_corpus_path(corpus="tinyshakespeare"))
    text = (text * (chars // len(text) + 1))[:chars]
    corpus, _, idx_to_char, vocab = d2lrnn.corpus_from_text(text, None, preprocess_style="raw")
    cell, layers = MODELS[label]
    d2lrnn.set_seed(0)
    if impl == "gluon":
        from mxnet import init
        from mxnet.gluon import rnn

        layer = {"rnn": lambda: rnn.RNN(HIDDEN, num_layers=layers, activation="tanh"),
                 "gru": lambda: rnn.GRU(HIDDEN, num_layers=layers),
                 "lstm": lambda: rnn.LSTM(HIDDEN, num_layers=layers)}[cell]()
        model = d2lrnn.RNNModel(layer, vocab)
        model.initialize(init.Normal(0.01), ctx=ctx)
    else:
        name = {"lecture": cell, "scratch": f"{cell}-bptt", "fused": f"gluon-{cell}"}[impl]
        model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=HIDDEN, ctx=ctx, num_layers=layers)
    options = TrainOptions(num_steps=STEPS, batch_size=BATCH, lr=100.0, clipping_theta=0.01)
    marks = {}

    def on_batch(progress):
        if progress.batch == 10:  # after warm-up (first calls allocate and tune), time the rest of the epoch
            marks["start"] = time.perf_counter()
        return False

    start = time.perf_counter()
    ppl = train_epoch(model, corpus, d2lrnn.SGD(model.param_arrays(), lr=options.lr), options, ctx=ctx,
                      on_batch=on_batch)
    end = time.perf_counter()
    batches = (len(corpus) // BATCH - 1) // STEPS
    rate = (batches - 10) * BATCH * STEPS / (end - marks["start"])
    fc = matmul_rate()
    print("RESULT " + json.dumps(dict(
        label=label, impl=impl, chars=chars, chars_per_s=rate, seconds=end - start, perplexity=ppl,
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, matmul_gflops=fc,
        flops_per_char=flops_per_char(cell, layers, vocab), vocab=vocab, numpy=np.__version__)))


def torch_command(label, chars, threads, torch_python):
    """The command line that runs the PyTorch reference for one model."""
    import d2lrnn

    cell, layers = MODELS[label]
    return [torch_python, TORCH_REFERENCE, str(d2lrnn.get_corpus_path(corpus="tinyshakespeare")), cell,
            str(layers), str(HIDDEN), str(STEPS), str(BATCH), str(chars), str(threads or 2),
            "sgd", "100", "0.01"]


def spawn(label, impl, chars, threads=None, torch_python=None):
    """Run `child` in a fresh interpreter (with OMP_NUM_THREADS=threads if given); return its result dict."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", label, impl, str(chars)]
    if impl == "torch":
        cmd = torch_command(label, chars, threads, torch_python)
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            if impl == "torch":  # the same arithmetic, so the same share of the matmul rate can be given
                result.update(peak_mb=float("nan"), matmul_gflops=matmul_rate(),
                              flops_per_char=flops_per_char(*MODELS[label], vocab=65))
            return result
    sys.exit(f"{label} {impl} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def environment():
    """The thread settings and load this run saw."""
    keys = ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS", "OMP_WAIT_POLICY", "MXNET_ENGINE_TYPE")
    env = ", ".join(f"{k}={os.environ[k]}" for k in keys if k in os.environ) or "default thread settings"
    return f"{os.cpu_count()} CPUs, {env}, load average {os.getloadavg()[0]:.2f}"


def speed(args):
    print(f"one epoch over {args.chars:,} characters of Tiny Shakespeare, hidden {HIDDEN}, {STEPS} steps, "
          f"batch {BATCH}, {args.rounds} rounds; {environment()}")
    runs = {}
    impls = [i for i in args.impls if i != "torch" or args.torch_python]
    combos = [(label, impl, t) for label in args.models for impl in impls for t in args.threads
              if runs_as(label, impl)]
    for r in range(args.rounds):
        order = combos if r % 2 == 0 else combos[::-1]  # alternate the order from round to round
        for label, impl, threads in order:
            res = spawn(label, impl, args.chars, threads, args.torch_python)
            runs.setdefault((label, impl, threads), []).append(res)
            print(f"  round {r + 1} {label:13s} {impl:8s} {threads or 'default'} threads "
                  f"{res['chars_per_s']:9,.0f} chars/s, peak {res['peak_mb']:5.0f} MB, "
                  f"matmul {res['matmul_gflops']:.0f} GFLOP/s", flush=True)
    print()
    heads = [f"characters/s, {t or 'default'} thread{'s' if t != 1 else ''}" for t in args.threads]
    print("| model | implementation | " + " | ".join(heads) + " | share of matmul rate (best) | peak RSS |")
    print("|---|---|" + "---|" * len(heads) + "---|---|")
    for label in args.models:
        for impl in filter(lambda impl: runs_as(label, impl), impls):
            rates, shares, peaks = [], [], []
            for t in args.threads:
                results = runs[(label, impl, t)]
                rates.append(statistics.median(r["chars_per_s"] for r in results))
                shares.append(statistics.median(r["chars_per_s"] * r["flops_per_char"] / 1e9
                                                / r["matmul_gflops"] for r in results))
                peaks.append(max(r["peak_mb"] for r in results))
            print(f"| {label} | {impl} | " + " | ".join(f"{r:,.0f}" for r in rates) +
                  f" | {100 * max(shares):.0f} % | {max(peaks):.0f} MB |")
    def matmul(threads):
        return statistics.median(r["matmul_gflops"] for key, results in runs.items() if key[2] == threads
                                 for r in results)

    print("\nmatmul rate of the large FullyConnected, median: " + ", ".join(
        f"{t or 'default'} threads {matmul(t):.0f} GFLOP/s" for t in args.threads))
    if args.torch_python:
        print("\nbest d2lrnn path / PyTorch, characters per second (same run, medians, best thread setting):")
        for label in args.models:
            def best(impl, label=label):
                return max(statistics.median(r["chars_per_s"] for r in runs[(label, impl, t)])
                           for t in args.threads if (label, impl, t) in runs)
            ours = max((best(i), i) for i in impls if i != "torch" and runs_as(label, i))
            theirs = best("torch")
            print(f"  {label}: {ours[1]} {ours[0]:,.0f} / torch {theirs:,.0f} = {ours[0] / theirs:.2f}x")
    print("\nwhat `d2lrnn train --model` runs: " + "; ".join(PICKS.values()))


def main_job_peak_mb(label, impl, chars, folder):
    """Peak RSS (MB) of `d2lrnn train` (read, split, one epoch, score, save) on `chars` characters."""
    import d2lrnn

    text = d2lrnn.data.read_text(d2lrnn.get_corpus_path(corpus="tinyshakespeare"))
    path = os.path.join(folder, f"text{chars}.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write((text * (chars // len(text) + 1))[:chars])
    cell, layers = MODELS[label]
    name = {"lecture": cell, "scratch": f"{cell}-bptt", "fused": f"gluon-{cell}"}[impl]
    args = ["--text", path, "--preprocess", "raw", "--val-fraction", "0.1", "--model", name,
            "--layers", str(layers), "--hidden", str(HIDDEN), "--steps", str(STEPS),
            "--batch-size", str(BATCH), "--epochs", "1", "--out", os.path.join(folder, f"run-{name}-{chars}")]
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))
    from helpers import main_job_peak_kb

    threads = (os.cpu_count() or 1) if impl == "fused" else 1  # what `train` would choose for this model
    return main_job_peak_kb(args, threads=threads) / 1024


def memory(args):
    """Peak RSS of the main job at N and 4N characters: what each added character costs (at most 10 bytes)."""
    import tempfile

    print(f"peak RSS of `d2lrnn train` over N and 4N characters (one epoch); {environment()}")
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        for label in args.models:
            for impl in [i for i in args.impls if i in ("lecture", "scratch", "fused") and runs_as(label, i)]:
                n = args.chars
                small, large = (main_job_peak_mb(label, impl, k, folder) for k in (n, 4 * n))
                per_char = (large - small) * 2 ** 20 / (3 * n)
                ok = ok and per_char <= 10
                print(f"  {label:13s} {impl:8s} {n:>9,} chars: {small:5.0f} MB   {4 * n:>9,} chars: "
                      f"{large:5.0f} MB   ({per_char:+.1f} bytes per added character)", flush=True)
    print("PASS: at most 10 bytes per added character" if ok else "FAIL: more than 10 bytes per character")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS))
    ap.add_argument("--impls", default="lecture,scratch,fused,gluon,torch", help="from: " + ", ".join(IMPLS))
    ap.add_argument("--threads", default="1,2",
                    help="OMP_NUM_THREADS values to run each at ('0': leave unset)")
    ap.add_argument("--memory", action="store_true",
                    help="peak RSS of the main job on --chars and 4 x --chars instead")
    ap.add_argument("--torch-python", help="a Python with torch, for the PyTorch reference (impl 'torch')")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    args.models = [m.strip() for m in args.models.split(",")]
    args.impls = [i.strip() for i in args.impls.split(",")]
    args.threads = [int(t) or None for t in args.threads.split(",")]
    unknown = [m for m in args.models if m not in MODELS] + [i for i in args.impls if i not in IMPLS]
    if unknown:
        ap.error(f"unknown: {', '.join(unknown)}")
    if args.memory:
        sys.exit(0 if memory(args) else 1)
    speed(args)


if __name__ == "__main__":
    main()
