"""Command line: `python -m d2lrnn train` (the lecture's main job) and `python -m d2lrnn generate`."""
import argparse
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

PREFIXES = ("traveller", "time traveller")


@dataclass
class TrainConfig:
    """Hyperparameters of the main job; the defaults are the lecture's."""

    epochs: int = 500
    hidden: int = 512
    steps: int = 35
    batch_size: int = 32
    lr: float = 100.0
    clip: float = 0.01
    sampling: str = "sequential"
    model: str = "rnn"
    token: str = "char"
    ctx: str = "auto"
    text: str = None
    num_chars: int = 10000
    val_chars: int = 0
    seed: int = 0
    out: str = "runs/lecture"
    resume: str = None
    overwrite: bool = False
    pred_period: int = 50
    pred_len: int = 50


class CLIError(Exception):
    """A user mistake that ends the program with one line on stderr."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump)."""

    def error(self, message):
        raise CLIError(f"{self.prog}: {message} (see {self.prog} --help)")


def model_functions(name):
    """(get_params, init_state, step function) for 'rnn', 'gru' or 'lstm'."""
    from .gated import scratch_models

    models = scratch_models()
    if name not in models:
        raise CLIError(f"unknown model {name!r}: choose {', '.join(models)}")
    return models[name]


def resolve_ctx(name):
    """'auto' | 'cpu' | 'gpu' -> an MXNet context; asking for an absent GPU is an error."""
    import mxnet as mx

    from .utils import num_gpus, try_gpu

    if name == "auto":
        return try_gpu()
    if name == "cpu":
        return mx.cpu()
    if num_gpus() == 0:
        raise CLIError("--ctx gpu: MXNet sees no usable GPU (this is the CPU build, or CUDA 11 "
                       "libraries are missing; see the README's GPU section). Use --ctx cpu or auto.")
    return mx.gpu(0)


def validate(cfg):
    """Reject hyperparameters that cannot train, before any work is done."""
    for name in ("epochs", "hidden", "steps", "batch_size"):
        if getattr(cfg, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    for name in ("lr", "clip"):
        if not getattr(cfg, name) > 0:
            raise CLIError(f"--{name} must be positive, got {getattr(cfg, name)}")


def check_out(cfg):
    """Refuse to replace a trained checkpoint unless asked to (or resuming from it)."""
    ckpt = Path(cfg.out) / "checkpoint"
    resuming_here = cfg.resume and Path(cfg.resume).resolve() in (Path(cfg.out).resolve(), ckpt.resolve())
    if ckpt.exists() and not (cfg.overwrite or resuming_here):
        raise CLIError(f"{cfg.out} already holds a trained model: choose another --out, continue it with "
                       f"--resume {cfg.out}, or pass --overwrite to replace it")


def data_iterator(cfg):
    """The minibatch iterator for cfg.sampling."""
    from .data import data_iter_consecutive, data_iter_random

    return data_iter_random if cfg.sampling == "random" else data_iter_consecutive


def load_corpus(cfg):
    """Training 4-tuple and held-out indices (the val_chars after the training text)."""
    from . import data

    text = data.read_text(cfg.text) if cfg.text else data.read_text(data.get_corpus_path())
    if cfg.num_chars < 1 or cfg.val_chars < 0:
        raise CLIError(f"--num-chars must be >= 1 and --val-chars >= 0 (got {cfg.num_chars}, {cfg.val_chars})")
    corpus = data.corpus_from_text(text, cfg.num_chars, cfg.token)
    held_out = text[cfg.num_chars:cfg.num_chars + cfg.val_chars]
    if cfg.val_chars and not held_out.strip():
        raise CLIError(f"--val-chars {cfg.val_chars}: the text has nothing after its first "
                       f"{cfg.num_chars} characters to hold out; lower --num-chars")
    val = data.encode_text(held_out, corpus[1], cfg.token) if cfg.val_chars else None
    return corpus, val


def train(cfg):
    """Train, then write history.csv, perplexity.png, samples.txt and checkpoint/ into cfg.out."""
    from tqdm.auto import tqdm

    from .baselines import bits_per_char
    from .checkpoint import save_checkpoint
    from .generate import predict_rnn
    from .plot import save_perplexity_plot
    from .train import History, train_and_predict_rnn
    from .utils import set_seed

    validate(cfg)
    check_out(cfg)
    ctx = resolve_ctx(cfg.ctx)
    set_seed(cfg.seed)
    (corpus, char_to_idx, idx_to_char, vocab_size), val = load_corpus(cfg)
    next(data_iterator(cfg)(corpus, cfg.batch_size, cfg.steps, ctx))  # fails now if the text is too short
    get_params, init_state, step = model_functions(cfg.model)
    params, history = None, History()
    if cfg.resume:
        params, history = resume(cfg, idx_to_char, ctx)
    print(f"training {cfg.model} ({cfg.hidden} hidden) on {len(corpus)} {cfg.token}s, vocabulary "
          f"{vocab_size}, {cfg.sampling} sampling, {cfg.epochs} epochs on {ctx}", file=sys.stderr)
    params = params or get_params(vocab_size, cfg.hidden, ctx)
    try:  # params and history are updated in place, so an interrupted run can still be saved
        train_and_predict_rnn(
            step, get_params, init_state, cfg.hidden, vocab_size, ctx, corpus, idx_to_char, char_to_idx,
            cfg.sampling == "random", cfg.epochs, cfg.steps, cfg.lr, cfg.clip, cfg.batch_size,
            cfg.pred_period, cfg.pred_len, PREFIXES, params=params, val_corpus=val, history=history,
            progress=True, log=tqdm.write)
    except KeyboardInterrupt:
        if not history.epoch:
            raise CLIError("interrupted before the first epoch ended; nothing to save") from None
        print(f"interrupted: saving the {len(history.epoch)} epochs trained so far", file=sys.stderr)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    history.to_csv(out / "history.csv")
    save_perplexity_plot(history, out / "perplexity.png", baseline=vocab_size)
    samples = [predict_rnn(p, 200, step, params, init_state, cfg.hidden, vocab_size, ctx, idx_to_char,
                           char_to_idx) for p in PREFIXES]
    (out / "samples.txt").write_text("\n\n".join(samples) + "\n", encoding="utf-8")
    save_checkpoint(out / "checkpoint", params, idx_to_char, asdict(cfg), history)
    val = f", held-out {history.val_perplexity[-1]:.3f}" if history.val_perplexity else ""
    print(f"final perplexity {history.perplexity[-1]:.3f} ({bits_per_char(history.perplexity[-1]):.2f} "
          f"bits/{cfg.token}){val}; wrote {out}/ (history.csv, perplexity.png, "
          f"samples.txt, checkpoint/)", file=sys.stderr)
    return history


def resume(cfg, idx_to_char, ctx):
    """Load params and history from a checkpoint that matches this run's data and model."""
    from .checkpoint import find_checkpoint, load_checkpoint
    from .train import History

    params, saved_vocab, _, saved = load_checkpoint(cfg.resume, ctx)
    for key in ("model", "hidden", "token"):
        if saved.get(key) != getattr(cfg, key):
            raise CLIError(f"--resume {cfg.resume}: the checkpoint has {key}={saved.get(key)!r}, this run "
                           f"{getattr(cfg, key)!r}; pass --{key} {saved.get(key)} or start afresh")
    if saved_vocab != list(idx_to_char):
        raise CLIError(f"--resume {cfg.resume}: the checkpoint's vocabulary ({len(saved_vocab)} tokens) "
                       f"differs from this text's ({len(idx_to_char)}); train on the same text and --num-chars")
    hist_file = find_checkpoint(cfg.resume) / "history.csv"
    return params, History.from_csv(hist_file) if hist_file.is_file() else History()


def generate(args):
    """Print text generated from a checkpoint."""
    from .checkpoint import load_checkpoint
    from .generate import predict_rnn

    ctx = resolve_ctx(args.ctx)
    params, idx_to_char, char_to_idx, cfg = load_checkpoint(args.checkpoint, ctx)
    _, init_state, step = model_functions(cfg["model"])
    if args.length < 0:
        raise CLIError(f"--length must be >= 0, got {args.length}")
    common = (args.prefix, args.length, step, params, init_state, cfg["hidden"], len(idx_to_char), ctx,
              idx_to_char, char_to_idx)
    if args.temperature is None and args.top_k is None:
        print(predict_rnn(*common))
        return
    from .sampling import sample_rnn

    print(sample_rnn(*common, temperature=1.0 if args.temperature is None else args.temperature,
                     top_k=args.top_k, seed=args.seed))


def build_parser():
    """The `d2lrnn` argument parser with its train and generate commands."""
    d = TrainConfig()
    parser = Parser(prog="d2lrnn", description="Train and sample the STAT 157 lecture's character RNN.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("train", help="train the lecture model and write curves, samples and a checkpoint")
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--hidden", type=int, default=d.hidden, help="hidden units (default %(default)s)")
    t.add_argument("--steps", type=int, default=d.steps, help="time steps per minibatch (num_steps)")
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr, help="learning rate (default %(default)s)")
    t.add_argument("--clip", type=float, default=d.clip, help="gradient clipping threshold theta")
    t.add_argument("--sampling", choices=["random", "sequential"], default=d.sampling)
    t.add_argument("--model", choices=["rnn", "gru", "lstm"], default=d.model)
    t.add_argument("--token", choices=["char", "word"], default=d.token)
    t.add_argument("--ctx", choices=["auto", "cpu", "gpu"], default=d.ctx)
    t.add_argument("--text", help="train on this UTF-8 text file instead of The Time Machine")
    t.add_argument("--num-chars", type=int, default=d.num_chars, help="characters of text to train on")
    t.add_argument("--val-chars", type=int, default=d.val_chars,
                   help="characters after the training text held out for validation (default 0: none)")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--out", default=d.out, help="output folder (default %(default)s)")
    t.add_argument("--resume", help="continue training from this checkpoint folder")
    t.add_argument("--overwrite", action="store_true", help="replace the model already in --out")
    g = sub.add_parser("generate", help="print text generated by a trained checkpoint")
    g.add_argument("--checkpoint", required=True, help="folder written by `d2lrnn train --out`")
    g.add_argument("--prefix", required=True)
    g.add_argument("--length", type=int, default=100)
    g.add_argument("--temperature", type=float, help="sample instead of argmax, at this temperature")
    g.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    g.add_argument("--seed", type=int, help="seed for sampling")
    g.add_argument("--ctx", choices=["auto", "cpu", "gpu"], default="auto")
    return parser


def main(argv=None):
    """Entry point; returns the exit status (2 on a user error, with one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "generate":
            generate(args)
        else:
            names = {f.name for f in fields(TrainConfig)}
            train(TrainConfig(**{k: v for k, v in vars(args).items() if k in names}))
    except (CLIError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
