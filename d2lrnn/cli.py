"""Command line: `python -m d2lrnn train` (the main job), `generate`, `evaluate`, `compress` and `decompress`.

This module only parses arguments and calls the library: the training run's whole lifecycle is in
job.py, the run folder in runfolder.py, checkpoints in checkpoint.py. Mistakes end in one `error:` line
and exit status 2 (1 when training diverges or a save fails; 128 + the signal's number when stopped).
"""
import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

from . import compress as cz
from .checkpoint import atomic_write, load_checkpoint
from .config import MAX_SEED, TrainConfig, config_fields
from .data import CORPORA, PREPROCESS, encode, preprocess, unknown_fate
from .generation import check_sampling_args, generate
from .job import main_job, resolve_ctx
from .registry import MODELS
from .training import evaluate_perplexity
from .utils import UserError, quoted

MAX_LENGTH = 1_000_000  # characters `generate` may add


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump)."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


MAX_NAME_BYTES = 200  # a file or folder name; saves add a temporary suffix, and most file systems stop at 255


def path_arg(value):
    """A file or folder argument: not empty, valid UTF-8 (MXNet passes paths on as UTF-8), short names."""
    if not value:
        raise argparse.ArgumentTypeError("an empty path: give a file or folder name")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{quoted(value)} is not valid UTF-8: rename it") from None
    if any(len(part.encode()) > MAX_NAME_BYTES for part in Path(value).parts):
        raise argparse.ArgumentTypeError(f"{quoted(value)} has a name over {MAX_NAME_BYTES} bytes: "
                                         "shorten it")
    return value


def _in_range(name, value, low, high):
    """A whole-number argument within [low, high], or one clear error."""
    if value is not None and not low <= value <= high:
        raise UserError(f"{name} must be a whole number from {low:,} to {high:,}, got {value}")


def generate_command(args):
    """Print text generated from a checkpoint."""
    _in_range("--length", args.length, 0, MAX_LENGTH)
    _in_range("--seed", args.seed, 0, MAX_SEED)
    try:
        check_sampling_args(args.temperature, args.top_k)
    except ValueError as err:
        raise UserError(f"--temperature/--top-k: {err}") from None
    ctx = resolve_ctx(args.ctx)
    ckpt = load_checkpoint(args.checkpoint, ctx, prefer_best=True)
    source = ckpt.settings.source()
    prefix = preprocess(args.prefix, source.style) if source.token == "char" else args.prefix
    sampling = args.temperature is not None or args.top_k is not None
    temperature = (1.0 if args.temperature is None else args.temperature) if sampling else None
    try:
        text = generate(ckpt.model, prefix, args.length, ctx=ctx, idx_to_char=ckpt.idx_to_char,
                        char_to_idx=ckpt.char_to_idx, top_k=args.top_k, seed=args.seed,
                        temperature=temperature)
    except ValueError as err:
        raise UserError(f"--prefix: {err}") from None
    print(text)
    note = f"; the prefix was preprocessed like the training text ({source.style}): {prefix!r}" \
        if prefix != args.prefix else ""
    print(f"generated with {quoted(ckpt.folder)}{note}", file=sys.stderr)
    return 0


def evaluate_command(args):
    """Print the perplexity of a checkpoint on a text, without training."""
    _in_range("--steps", args.steps, 1, 100_000)
    _in_range("--batch-size", args.batch_size, 1, 100_000)
    ctx = resolve_ctx(args.ctx)
    ckpt = load_checkpoint(args.checkpoint, ctx, prefer_best=not args.last)
    source, split = ckpt.settings.source(), args.split
    if args.text or args.corpus:
        source = dataclasses.replace(source, text=args.text, corpus=args.corpus or source.corpus)
        split = "all" if split == "val" and not source.holds_out else split
    if split == "val" and not source.holds_out:
        raise UserError(f"{quoted(ckpt.folder)} was trained without held-out text: give --text or --corpus "
                        "to score a text, or --split train")
    if source.text and not Path(source.text).exists():
        raise UserError(f"text file not found: {quoted(source.text)}" + ("" if args.text else (
            " (the text the checkpoint was trained on, as it was named then): give it with --text")))
    try:
        text = source.part(split)
    except ValueError as err:
        hint = "; use --split all" if split != "all" else ""
        raise UserError(f"cannot score the {split} part of this text ({err}){hint}") from None
    indices, missing = encode(text, ckpt.char_to_idx, source.token)
    if len(indices) < 2:
        raise UserError(f"the text has {len(indices)} {source.token}s in the vocabulary; scoring needs at "
                        "least 2")
    ppl = evaluate_perplexity(ckpt.model, indices, ctx=ctx, num_steps=args.steps, batch_size=args.batch_size)
    bits = math.log2(ppl) if ppl > 0 and math.isfinite(ppl) else None
    report = {"source": source.name, "split": split, "tokens": int(len(indices)), "perplexity": ppl,
              "bits_per_token": bits, "outside_vocabulary": int(sum(missing.values()))}
    shown = f"{ppl:.3f} ({bits:.2f} bits/{source.token})" if bits is not None else f"{ppl}"
    print(f"{source.name} ({split}, {len(indices):,} {source.token}s): perplexity {shown}")
    if missing:
        print(f"{sum(missing.values())} {source.token}s outside the model's vocabulary were "
              f"{unknown_fate(ckpt.char_to_idx)} "
              f"({', '.join(repr(t) for t, _ in missing.most_common(5))})")
    if args.json:
        print(json.dumps(report))
    print(f"scored {quoted(ckpt.folder)}", file=sys.stderr)
    return 0


def _read_bytes(path):
    """The bytes of an input file, with a one-line error if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise UserError(f"input {quoted(path)}: {err.strerror or err}") from None


def _check_output(path, source, force):
    """Refuse an output that is not a regular file, is the input, or exists without --force (as gzip does)."""
    out = Path(path)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise UserError(f"{quoted(path)} exists and is not a regular file: give another output file")
    if out.exists() and out.resolve() == Path(source).resolve():
        raise UserError(f"{quoted(path)} is also the input: give another output file")
    if out.exists() and not force:
        raise UserError(f"{quoted(path)} already exists: give --force to replace it, or another output file")


def compress_command(args):
    """Compress a UTF-8 text file with a checkpoint's model."""
    _in_range("--lanes", args.lanes, 1, cz.MAX_LANES)
    _check_output(args.output, args.input, args.force)
    raw = _read_bytes(args.input)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{quoted(args.input)} is not UTF-8 text ({err.reason} at byte {err.start}); "
                        "compress text files only") from None
    ctx = resolve_ctx(args.ctx)
    ckpt = load_checkpoint(args.checkpoint, ctx, prefer_best=True)
    if ckpt.settings.token != "char":
        raise UserError(f"{quoted(ckpt.folder)} is a word-level model: compression works with character "
                        "models")
    start = time.time()
    data = cz.compress(text, ckpt.model, char_to_idx=ckpt.char_to_idx, ctx=ctx, lanes=args.lanes)
    seconds = time.time() - start
    atomic_write(Path(args.output), lambda p: p.write_bytes(data))
    rate = f"{8 * len(data) / len(text):.3f} bits per character" if text else "an empty text: the header only"
    print(f"{len(text):,} characters ({len(raw):,} bytes) -> {len(data):,} bytes, {rate}, "
          f"{len(text) / max(seconds, 1e-9):,.0f} characters/s; model {quoted(ckpt.folder)}", file=sys.stderr)
    return 0


def decompress_command(args):
    """Restore a text compressed by `compress` (with the same checkpoint)."""
    _check_output(args.output, args.input, args.force)
    data = _read_bytes(args.input)
    cz.read_header(data)  # a file that is not ours fails before the model loads
    ctx = resolve_ctx(args.ctx)
    ckpt = load_checkpoint(args.checkpoint, ctx, prefer_best=True)
    text = cz.decompress(data, ckpt.model, idx_to_char=ckpt.idx_to_char, ctx=ctx)
    atomic_write(Path(args.output), lambda p: p.write_bytes(text.encode("utf-8")))
    print(f"{len(data):,} bytes -> {len(text):,} characters, checksum verified; model {quoted(ckpt.folder)}",
          file=sys.stderr)
    return 0


def _train_parser(sub):
    """The `train` command's arguments, grouped; defaults from TrainConfig."""
    d = TrainConfig()
    t = sub.add_parser("train", help="train a model and write curves, samples and checkpoints")
    g = t.add_argument_group("model")
    g.add_argument("--model", choices=list(MODELS), default=d.model,
                   help="; ".join(f"{name}: {spec.summary}" for name, spec in MODELS.items()))
    g.add_argument("--hidden", type=int, default=d.hidden, help="hidden units per layer (default "
                                                                "%(default)s)")
    g.add_argument("--layers", type=int, default=d.layers, help="recurrent layers (default %(default)s)")
    g.add_argument("--embed", type=int, default=d.embed, help="embedding size; 0: one-hot input (default)")
    g.add_argument("--dropout", type=float, default=d.dropout, help="dropout between layers (default 0)")
    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"epochs to train (default {TrainConfig.LECTURE_EPOCHS}, or "
                                              "until --minutes runs out)")
    g.add_argument("--minutes", type=float, help="stop after this many minutes of training")
    g.add_argument("--train-chars", type=int, help="stop after training on this many characters (tokens), "
                                                   "counted over all epochs: a budget that is the same on "
                                                   "any machine")
    g.add_argument("--steps", type=int, default=d.steps, help="time steps per minibatch (num_steps)")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--optimizer", choices=["sgd", "adam"], default=d.optimizer)
    g.add_argument("--lr", type=float, default=d.lr, help="learning rate (default %(default)s; try 0.002 "
                                                          "with adam)")
    g.add_argument("--lr-schedule", choices=["constant", "cosine"], default=d.lr_schedule,
                   help="constant (default), or cosine: decay to a tenth of --lr by the end of the run")
    g.add_argument("--warmup", type=int, default=d.warmup, help="minibatches of linear learning-rate warm-up")
    g.add_argument("--clip", type=float, default=d.clip, help="gradient clipping threshold theta (inf: off)")
    g.add_argument("--sampling", choices=["random", "sequential"], default=d.sampling)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--ctx", choices=["auto", "cpu", "gpu"], default=d.ctx)
    g.add_argument("--threads", default=d.threads,
                   help="OpenMP threads for MXNet: a number, or auto (default): every CPU for the fused "
                        "gluon-* models, MXNet's own default for the others; OMP_NUM_THREADS, if set, wins")
    g = t.add_argument_group("data")
    g.add_argument("--corpus", choices=list(CORPORA), default=d.corpus, help="built-in text (default "
                                                                             "%(default)s)")
    g.add_argument("--text", type=path_arg, help="train on this UTF-8 file instead of a built-in corpus")
    g.add_argument("--preprocess", choices=list(PREPROCESS),
                   help="lecture: lower case, line breaks as spaces (default for timemachine and --text); "
                        "raw: as is (default for tinyshakespeare); letters: homework 8's letters and spaces")
    g.add_argument("--token", choices=["char", "word"], default=d.token)
    g.add_argument("--num-chars", type=int, help="characters to train on (default: 10000 of timemachine, "
                                                 "else all but the held-out text)")
    g.add_argument("--val-chars", type=int, default=d.val_chars,
                   help="hold out this many characters after the training text (the end, without "
                        "--num-chars)")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="hold out this fraction at the end of the text (0.1: nanoGPT's split)")
    g = t.add_argument_group("output")
    g.add_argument("--out", type=path_arg, default=d.out, help="output folder (default %(default)s)")
    g.add_argument("--resume", type=path_arg, help="continue training from this run folder or checkpoint")
    g.add_argument("--overwrite", action="store_true", help="replace the model already in --out")
    g.add_argument("--prefix", action="append", help="start of the samples shown while training (repeatable; "
                                                     "default: the text's first word)")
    g.add_argument("--pred-period", type=int, default=d.pred_period, help="epochs between samples")
    g.add_argument("--pred-len", type=int, default=d.pred_len, help="length of those samples")
    g.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="also score the held-out text every this many minibatches (0: at epoch ends only)")
    g.add_argument("--save-every", type=float, default=d.save_every,
                   help="minutes between checkpoints while training (default %(default)s)")


def build_parser():
    """The `d2lrnn` argument parser with its train, generate, evaluate, compress and decompress commands."""
    parser = Parser(prog="d2lrnn", description="Train, sample and score the STAT 157 lecture's character "
                                               "RNN.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _train_parser(sub)
    checkpoint_help = "a run folder (its best/ if any, else checkpoint/) or a checkpoint folder"
    g = sub.add_parser("generate", help="print text generated by a trained checkpoint")
    g.add_argument("--checkpoint", type=path_arg, required=True, help=checkpoint_help)
    g.add_argument("--prefix", required=True)
    g.add_argument("--length", type=int, default=100)
    g.add_argument("--temperature", type=float, help="sample instead of argmax, at this temperature")
    g.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    g.add_argument("--seed", type=int, help="seed for sampling")
    e = sub.add_parser("evaluate", help="perplexity of a checkpoint on a text, without training")
    e.add_argument("--checkpoint", type=path_arg, required=True, help=checkpoint_help)
    e.add_argument("--last", action="store_true", help="score checkpoint/ even when the run has a best/")
    which = e.add_mutually_exclusive_group()
    which.add_argument("--text", type=path_arg,
                       help="score this UTF-8 file (preprocessed like the training text)")
    which.add_argument("--corpus", choices=list(CORPORA), help="score this built-in corpus")
    e.add_argument("--split", choices=["val", "train", "all"], default="val",
                   help="the checkpoint's held-out part (default), its training part, or the whole text")
    e.add_argument("--steps", type=int, default=35, help="window length (changes speed and memory, not the "
                                                         "result)")
    e.add_argument("--batch-size", type=int, default=32,
                   help="streams the text is read as (default %(default)s, as training scores held-out text)")
    e.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    commands = [g, e]
    for name, what in (("compress", "compress a UTF-8 text with a checkpoint's model (range coding)"),
                       ("decompress", "restore a text written by compress, with the same checkpoint")):
        c = sub.add_parser(name, help=what)
        c.add_argument("--checkpoint", type=path_arg, required=True, help=checkpoint_help)
        c.add_argument("input", type=path_arg)
        c.add_argument("output", type=path_arg)
        c.add_argument("--force", action="store_true", help="replace the output file if it exists")
        if name == "compress":
            c.add_argument("--lanes", type=int, help="pieces of the text coded side by side (default: chosen "
                                                     "from the text's length)")
        commands.append(c)
    for c in commands:
        c.add_argument("--ctx", choices=["auto", "cpu", "gpu"], default="auto")
    return parser


COMMANDS = {"generate": generate_command, "evaluate": evaluate_command, "compress": compress_command,
            "decompress": decompress_command}


def main(argv=None):
    """Entry point; returns the exit status (2 for a mistake, with one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        names = set(config_fields())
        return main_job(TrainConfig(**{k: v for k, v in vars(args).items() if k in names}))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
