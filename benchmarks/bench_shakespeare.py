"""Tiny Shakespeare with the main job's best recipe: held-out loss per character trained, and speed against
PyTorch's CPU LSTM of the same shape timed in the same run.

Quality does not depend on the machine: the main job trains for a budget of characters (--train-chars) and
scores the held-out tenth (the last 10 %, as nanoGPT splits it) every few minibatches; the curve of
held-out loss (nats per character) against characters seen goes to benchmarks/figures/shakespeare.png,
with nanoGPT's published figures for this split as reference lines (1.88 after 1.5M characters with its
CPU recipe; 1.4697 with its GPU model). Speed is a ratio: characters per second of the recipe's model
through d2lrnn's training loop and of torch.nn.LSTM of the same shape (benchmarks/torch_reference.py, run
with a separate Python that has torch), alternating fresh processes, medians.

    python benchmarks/bench_shakespeare.py                       # 1.5M characters + speed (torch optional)
    python benchmarks/bench_shakespeare.py --train-chars 1500000,15000000   # both budgets, one figure
    python benchmarks/bench_shakespeare.py --speed-only --torch-python ../.venv-torch/bin/python
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = {"model": "gluon-lstm", "hidden": 512, "layers": 1, "steps": 32, "batch-size": 16,
          "optimizer": "adam", "lr": 0.006, "clip": 1, "lr-schedule": "cosine", "warmup": 100}
TRAIN_CHARS = 1_003_854  # Tiny Shakespeare's first 90 %
NANOGPT = {"nanoGPT CPU recipe, 1.5M characters": 1.88, "nanoGPT GPU (6 layers, 10.7M parameters)": 1.4697}


def recipe_args(recipe):
    return [x for k, v in recipe.items() for x in (f"--{k}", str(v))]


def quality(args, train_chars):
    """Train with the recipe for train_chars characters; ([(characters seen, held-out nats)], minutes)."""
    out = Path(tempfile.mkdtemp(prefix="shakespeare-"))
    cmd = [sys.executable, "-m", "d2lrnn", "train", "--corpus", "tinyshakespeare", "--val-fraction", "0.1",
           "--train-chars", str(train_chars),
           "--eval-every", str(max(args.eval_every, train_chars // 30_000)),
           "--pred-period", "1000", "--out", str(out / "run"), *recipe_args(RECIPE)]
    print(" ".join(["python", "-m", "d2lrnn", *cmd[3:-len(recipe_args(RECIPE))], *recipe_args(RECIPE)]))
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    minutes = (time.time() - start) / 60
    steps, batch = RECIPE["steps"], RECIPE["batch-size"]
    per_epoch = (TRAIN_CHARS // batch - 1) // steps * steps * batch  # characters in one epoch's minibatches
    rows = [(float(r["epoch"]) * per_epoch, math.log(float(r["val_perplexity"])))
            for r in csv.DictReader(open(out / "run" / "history.csv")) if r["val_perplexity"]]
    print(f"{train_chars:,} training characters in {minutes:.1f} minutes (machine load "
          f"{os.getloadavg()[0]:.1f}): held-out loss {rows[-1][1]:.3f} nats/char at the end, best "
          f"{min(v for _, v in rows):.3f}")
    return rows, minutes


def plot(runs, path):
    """runs: {budget: (rows, minutes)}; one curve per budget, log-scaled characters."""
    from matplotlib.figure import Figure

    from d2lrnn.plot import plain_log_ticks

    fig = Figure(figsize=(6.4, 3.8), tight_layout=True)
    ax = fig.add_subplot()
    for budget, (rows, minutes) in sorted(runs.items()):
        chars, loss = zip(*rows)
        ax.plot([c / 1e6 for c in chars], loss, marker=".", lw=1.6,
                label=f"d2lrnn, {budget / 1e6:g}M characters ({minutes:.0f} min): best {min(loss):.3f}, "
                      f"last {loss[-1]:.3f}")
    for (label, value), style in zip(NANOGPT.items(), (":", "--")):
        ax.axhline(value, color="grey", lw=1, ls=style, label=f"{label}: {value}")
    ax.set_xscale("log")
    plain_log_ticks(ax, axis="x")
    ax.set_xlabel("training characters seen (millions, log scale)")
    ax.set_ylabel("held-out loss (nats per character)")
    ax.set_title("Tiny Shakespeare, last 10 % held out; 2 CPU cores", fontsize=10)
    ax.set_ylim(1.3, 2.6)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


SPEED_CHILD = """\
import json, sys, time
import mxnet as mx
import d2lrnn
from d2lrnn.training import TrainOptions, train_epoch
recipe, chars = json.loads(sys.argv[1]), int(sys.argv[2])
text = d2lrnn.data.read_text(d2lrnn.get_corpus_path(corpus="tinyshakespeare"))
corpus, _, _, vocab = d2lrnn.corpus_from_text((text * 4)[:chars], None, preprocess_style="raw")
model = d2lrnn.build_model(recipe["model"], vocab_size=vocab, num_hiddens=recipe["hidden"], ctx=mx.cpu(),
                           num_layers=recipe["layers"])
options = TrainOptions(num_steps=recipe["steps"], batch_size=recipe["batch-size"], lr=recipe["lr"],
                       clipping_theta=recipe["clip"], optimizer=recipe["optimizer"])
marks = {}
def on_batch(progress):
    if progress.batch == 10:
        marks["start"] = time.perf_counter()
optimizer = d2lrnn.Adam(model.param_arrays(), recipe["lr"])
train_epoch(model, corpus, optimizer, options, ctx=mx.cpu(), on_batch=on_batch)
end = time.perf_counter()
batches = (len(corpus) // options.batch_size - 1) // options.num_steps
print("RESULT " + json.dumps({"chars_per_s": (batches - 10) * options.batch_size * options.num_steps
                                             / (end - marks["start"])}))
"""


def one_speed(impl, args):
    if impl == "torch":
        import d2lrnn

        cmd = [args.torch_python, str(HERE / "torch_reference.py"),
               str(d2lrnn.get_corpus_path(corpus="tinyshakespeare")), "lstm", str(RECIPE["layers"]),
               str(RECIPE["hidden"]), str(RECIPE["steps"]), str(RECIPE["batch-size"]), str(args.speed_chars),
               str(args.threads), RECIPE["optimizer"], str(RECIPE["lr"]), str(RECIPE["clip"])]
        env = dict(os.environ)
    else:
        cmd = [sys.executable, "-c", SPEED_CHILD, json.dumps(RECIPE), str(args.speed_chars)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}  # as `train` sets it for gluon-* models
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{impl} failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])["chars_per_s"]


def speed(args):
    impls = ["d2lrnn"] + (["torch"] if args.torch_python else [])
    rates = {impl: [] for impl in impls}
    for r in range(args.rounds):
        for impl in (impls if r % 2 == 0 else impls[::-1]):
            rates[impl].append(one_speed(impl, args))
            print(f"  round {r + 1} {impl:7s} {rates[impl][-1]:9,.0f} characters/s", flush=True)
    ours = statistics.median(rates["d2lrnn"])
    print(f"d2lrnn {RECIPE['model']} {RECIPE['hidden']} hidden, batch {RECIPE['batch-size']} x "
          f"{RECIPE['steps']} steps, {args.threads} threads: {ours:,.0f} characters/s (median)")
    if args.torch_python:
        theirs = statistics.median(rates["torch"])
        print(f"torch.nn.LSTM, the same shape: {theirs:,.0f} characters/s -> d2lrnn / PyTorch = "
              f"{ours / theirs:.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-chars", default="1500000", help="budgets, comma-separated (one run each)")
    ap.add_argument("--eval-every", type=int, default=100, help="minibatches between held-out scores")
    ap.add_argument("--figure", default=str(HERE / "figures" / "shakespeare.png"))
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--speed-chars", type=int, default=150_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--torch-python", help="a Python with torch, for the PyTorch reference")
    args = ap.parse_args()
    if not args.speed_only:
        runs = {int(b): quality(args, int(b)) for b in args.train_chars.split(",")}
        plot(runs, args.figure)
    speed(args)


if __name__ == "__main__":
    main()
