"""Command line: `python -m d2lrnn train` (the main job), `generate`, `evaluate`, `compress` and `decompress`.

`train` runs in three steps: prepare (read and check everything: arguments, output folder, text,
prefixes, a checkpoint to resume; nothing is trained until all of it passes), run (the training
loop, with periodic checkpoints, the best held-out weights kept, Ctrl-C and divergence handled) and
finish (checkpoint, history, curve and samples, then a summary of what the final weights score).
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .data import CORPORA, PREPROCESS
from .registry import MODELS
from .utils import UserError

TIME_MACHINE_PREFIXES = ("traveller", "time traveller")  # the lecture's
FLOAT32_MAX = 3.4028234663852886e38  # MXNet's optimisers refuse a larger learning rate
SUMMARY_TOKENS = 200_000  # the final weights are scored on at most this much of the training text


@dataclass
class TrainConfig:
    """Hyperparameters of the main job; the defaults are the lecture's."""

    epochs: int = None        # None: 500, or until --minutes runs out
    minutes: float = None     # a wall-clock budget instead of (or as well as) a number of epochs
    hidden: int = 512
    layers: int = 1
    embed: int = 0            # 0: one-hot input, as in the lecture
    dropout: float = 0.0
    steps: int = 35
    batch_size: int = 32
    lr: float = 100.0
    clip: float = 0.01
    optimizer: str = "sgd"
    sampling: str = "sequential"
    model: str = "rnn"
    token: str = "char"
    ctx: str = "auto"
    corpus: str = "timemachine"
    text: str = None          # a file of your own instead of a built-in corpus
    preprocess: str = None    # None: the corpus's own (lecture for The Time Machine and --text, raw for Shakespeare)
    num_chars: int = None     # None: the lecture's 10,000 for The Time Machine, else all but the held-out text
    val_chars: int = 0
    val_fraction: float = 0.0
    prefix: list = field(default=None)
    pred_period: int = 50
    pred_len: int = 50
    eval_every: int = 0       # minibatches between held-out evaluations within an epoch (0: at epoch ends)
    save_every: float = 5.0   # minutes between checkpoints during training
    seed: int = 0
    threads: str = "auto"     # OpenMP threads for MXNet; see wanted_threads
    out: str = "runs/lecture"
    resume: str = None
    overwrite: bool = False

    def data_settings(self):
        """(preprocessing, characters to train on) after the corpus's defaults are applied."""
        corpus = None if self.text else CORPORA[self.corpus]
        style = self.preprocess or (corpus.preprocess if corpus else "lecture")
        num_chars = self.num_chars if self.num_chars is not None else (corpus.num_chars if corpus else None)
        return style, num_chars


class UsageError(UserError):
    """A command-line mistake: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# --- checks that need no data ------------------------------------------------------------------

def _flag(name):
    return "--" + name.replace("_", "-")


def validate(cfg):
    """Reject settings that cannot train, before any work is done."""
    for name in ("hidden", "layers", "steps", "batch_size", "pred_period"):
        if getattr(cfg, name) < 1:
            raise UsageError(f"{_flag(name)} must be at least 1, got {getattr(cfg, name)}")
    for name in ("epochs", "num_chars"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise UsageError(f"{_flag(name)} must be at least 1, got {getattr(cfg, name)}")
    for name in ("embed", "val_chars", "eval_every", "pred_len", "seed"):
        if getattr(cfg, name) < 0:
            raise UsageError(f"{_flag(name)} must be 0 or more, got {getattr(cfg, name)}")
    if not (0 < cfg.lr <= FLOAT32_MAX):
        raise UsageError(f"--lr must be a positive finite number (at most {FLOAT32_MAX:.3g}, MXNet's float32 limit), "
                         f"got {cfg.lr}")
    if not (0 < cfg.clip <= FLOAT32_MAX or cfg.clip == math.inf):
        raise UsageError(f"--clip must be positive and at most {FLOAT32_MAX:.3g} (inf turns clipping off), "
                         f"got {cfg.clip}")
    if not (cfg.threads == "auto" or (cfg.threads.isdigit() and int(cfg.threads) >= 1)):
        raise UsageError(f"--threads must be a whole number >= 1 or auto, got {cfg.threads!r}")
    for name in ("minutes", "save_every"):
        value = getattr(cfg, name)
        if value is not None and not (0 < value < math.inf):
            raise UsageError(f"{_flag(name)} must be a positive number of minutes, got {value}")
    if not 0 <= cfg.dropout < 1:
        raise UsageError(f"--dropout must be at least 0 and below 1, got {cfg.dropout}")
    if not 0 <= cfg.val_fraction < 1:
        raise UsageError(f"--val-fraction must be at least 0 and below 1, got {cfg.val_fraction}")
    if cfg.val_chars and cfg.val_fraction:
        raise UsageError("give --val-chars or --val-fraction, not both")
    if cfg.dropout and cfg.layers == 1:
        raise UsageError("--dropout acts between layers: give --layers 2 or more, or leave it out")


def check_out(cfg):
    """Refuse to replace a trained model unless asked to (or resuming from it); make sure --out is writable."""
    from .checkpoint import find_checkpoint

    out = Path(cfg.out)
    resuming_here = cfg.resume and Path(cfg.resume).resolve() in (out.resolve(), (out / "checkpoint").resolve())
    try:
        holds_model = find_checkpoint(out / "checkpoint") is not None
    except UserError:
        holds_model = False
    if holds_model and not (cfg.overwrite or resuming_here):
        raise UsageError(f"{cfg.out} already holds a trained model: choose another --out, continue it with "
                         f"--resume {cfg.out}, or pass --overwrite to replace it")
    missing = [p for p in [out, *out.parents] if not p.exists()]  # the folders this probe creates
    probe = out / f".write-test-{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".write-test-*"):  # left by a run killed during this check
            if stale.is_file():
                stale.unlink(missing_ok=True)
        probe.write_bytes(b"d2lrnn")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"--out {cfg.out}: cannot write there ({err.strerror or err}); choose a folder you "
                         "can write to") from None
    finally:
        for folder in missing:  # created again when there is something to save: a refused run leaves nothing
            try:
                folder.rmdir()
            except OSError:
                pass


def resolve_ctx(name):
    """'auto' | 'cpu' | 'gpu' -> an MXNet context; asking for an absent GPU is an error."""
    import mxnet as mx

    from .utils import num_gpus, try_gpu

    if name == "auto":
        return try_gpu()
    if name == "cpu":
        return mx.cpu()
    if num_gpus() == 0:
        raise UsageError("--ctx gpu: MXNet sees no usable GPU (this is the CPU build, or CUDA 11 "
                         "libraries are missing; see the README's GPU section). Use --ctx cpu or auto.")
    return mx.gpu(0)


# --- the data ------------------------------------------------------------------------------------

@dataclass
class Data:
    """The training and held-out token indices and their vocabulary."""

    corpus: object
    val: object
    idx_to_char: list
    char_to_idx: dict
    skipped: dict  # held-out tokens outside the training vocabulary, with counts


def read_source(cfg):
    """The raw text of --text or of the built-in --corpus."""
    from .data import get_corpus_path, read_text

    return read_text(cfg.text) if cfg.text else read_text(get_corpus_path(corpus=cfg.corpus))


def load_data(cfg):
    """Read, preprocess and split the text, build the vocabulary, and check every length fits a window."""
    from . import data

    style, num_chars = cfg.data_settings()
    text = data.preprocess(read_source(cfg), style)
    if not text.strip():
        raise UsageError(f"{cfg.text or cfg.corpus}: the text is empty after --preprocess {style}; choose another "
                         "--preprocess or another text")
    try:
        train_text, val_text = data.split_text(text, num_chars=num_chars, val_chars=cfg.val_chars,
                                               val_fraction=cfg.val_fraction)
    except ValueError as err:
        raise UsageError(f"{err} (--num-chars, --val-chars, --val-fraction)") from None
    try:
        corpus, char_to_idx, idx_to_char, _ = data.corpus_from_text(train_text, None, cfg.token,
                                                                     preprocess_style="raw")
    except ValueError as err:
        raise UsageError(str(err)) from None
    val, skipped = data.encode(val_text, char_to_idx, cfg.token) if (cfg.val_chars or cfg.val_fraction) else (None, {})
    iterator = data.data_iter_random if cfg.sampling == "random" else data.data_iter_consecutive
    try:
        next(iterator(corpus, cfg.batch_size, cfg.steps))
    except ValueError as err:
        raise UsageError(f"{err} (--batch-size, --steps, --num-chars)") from None
    if val is not None and len(val) < cfg.steps + 1:
        flag = "--val-chars" if cfg.val_chars else "--val-fraction"
        raise UsageError(f"{flag}: the held-out text has {len(val)} {cfg.token}s; scoring it needs at least "
                         f"{cfg.steps + 1} (one window of --steps {cfg.steps} and the {cfg.token} after it)")
    return Data(corpus=corpus, val=val, idx_to_char=idx_to_char, char_to_idx=char_to_idx, skipped=dict(skipped))


def default_prefixes(cfg, data):
    """--prefix if given; the lecture's for The Time Machine; else the training text's first word."""
    from .data import preprocess
    from .generation import decode

    if cfg.prefix:
        style = cfg.data_settings()[0]
        return tuple(preprocess(p, style) if cfg.token == "char" else p for p in cfg.prefix)
    if not cfg.text and cfg.corpus == "timemachine" and cfg.data_settings()[0] == "lecture":
        return TIME_MACHINE_PREFIXES
    head = decode(data.corpus[:40], data.idx_to_char).split()
    return (head[0][:20] if cfg.token == "char" else head[0],) if head else (decode(data.corpus[:1], data.idx_to_char),)


# --- preparing a run -----------------------------------------------------------------------------

@dataclass
class Job:
    """Everything a training run needs, prepared and checked before the first minibatch."""

    cfg: TrainConfig
    ctx: object
    data: Data
    prefixes: tuple
    model: object
    optimizer: object
    history: object
    start_batch: int = 0
    best: object = None     # (history row epoch, held-out perplexity, copies of the weights)
    position: dict = None   # where training stopped inside an epoch (None at an epoch's end)
    partial: tuple = None   # (running perplexity, seconds, fraction) of that unfinished epoch


MODEL_KEYS = ("model", "hidden", "layers", "embed", "token", "optimizer")


def resume(cfg, data, ctx):
    """(model, history, optimizer arrays, start batch) from a checkpoint that fits this run."""
    from .checkpoint import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(cfg.resume, ctx)
    except CheckpointError as err:
        raise UsageError(f"--resume {cfg.resume}: {err}") from None
    saved_cfg = {**asdict(TrainConfig()), **ckpt.config}
    for key in MODEL_KEYS:
        if saved_cfg[key] != getattr(cfg, key):
            raise UsageError(f"--resume {cfg.resume}: the checkpoint has {key}={saved_cfg[key]!r}, this run "
                             f"{getattr(cfg, key)!r}; pass {_flag(key)} {saved_cfg[key]} or start afresh")
    if ckpt.idx_to_char != list(data.idx_to_char):
        raise UsageError(f"--resume {cfg.resume}: the checkpoint's vocabulary ({len(ckpt.idx_to_char)} tokens) "
                         f"differs from this text's ({len(data.idx_to_char)}); train on the same text, "
                         "--preprocess and --num-chars")
    position = ckpt.config.get("position") or {}
    start = position.get("batch", 0) if position.get("epochs_done") == ckpt.history.epochs_done() else 0
    return ckpt.model, ckpt.history, ckpt.optimizer_arrays, start


def prepare(cfg):
    """Check the arguments, the output folder, the text and the prefixes, then build (or resume) the model."""
    from .optim import make_optimizer
    from .registry import build_model
    from .training import History, check_prefixes
    from .utils import set_seed

    validate(cfg)
    check_out(cfg)
    ctx = resolve_ctx(cfg.ctx)
    set_seed(cfg.seed)
    data = load_data(cfg)
    prefixes = default_prefixes(cfg, data)
    try:
        check_prefixes(prefixes, data.char_to_idx, data.idx_to_char)
    except ValueError as err:
        raise UsageError(f"--prefix: {err}") from None
    if cfg.resume:
        model, history, opt_arrays, start_batch = resume(cfg, data, ctx)
    else:
        model = build_model(cfg.model, vocab_size=len(data.idx_to_char), num_hiddens=cfg.hidden, ctx=ctx,
                            num_layers=cfg.layers, embed_size=cfg.embed, dropout=cfg.dropout)
        history, opt_arrays, start_batch = History(), {}, 0
    optimizer = make_optimizer(cfg.optimizer, model.param_arrays(), cfg.lr)
    if opt_arrays:
        optimizer.load_state_arrays(opt_arrays)
    return Job(cfg=cfg, ctx=ctx, data=data, prefixes=prefixes, model=model, optimizer=optimizer,
               history=history, start_batch=start_batch)


# --- running it ----------------------------------------------------------------------------------

class StopOnSignal:
    """While active, the first Ctrl-C (SIGINT) only asks training to stop at the next minibatch."""

    def __init__(self):
        self.requested, self.previous = False, None

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C: stop now, whatever it costs
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this minibatch (Ctrl-C again to stop at once)...", file=sys.stderr)

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def _save(job, folder, model_arrays=None, history=None, position=None):
    """Write a checkpoint of the job (its current weights, or the given copies) into out/folder."""
    from .checkpoint import save_checkpoint

    config = {**asdict(job.cfg), "position": position}
    if model_arrays is None:
        return save_checkpoint(Path(job.cfg.out) / folder, job.model, job.data.idx_to_char, config=config,
                               history=job.history, optimizer=job.optimizer)
    current = [a.copy() for a in job.model.param_arrays()]
    try:
        for a, kept in zip(job.model.param_arrays(), model_arrays):
            a[:] = kept
        return save_checkpoint(Path(job.cfg.out) / folder, job.model, job.data.idx_to_char, config=config,
                               history=history)
    finally:
        for a, now in zip(job.model.param_arrays(), current):
            a[:] = now


def _note_val(job, epoch, val, log=None):
    """Keep a copy of the weights whenever the held-out perplexity reaches a new low (and say so if log)."""
    best = val is not None and math.isfinite(val) and (job.best is None or val < job.best[1])
    if best:
        job.best = (epoch, val, [a.copy() for a in job.model.param_arrays()])
    if log is not None and val is not None:
        log(f"epoch {epoch:.2f}: held-out perplexity {val:.3f}" + (", the best so far" if best else ""))


def _save_all(job, position=None):
    """The last weights into checkpoint/, the best held-out ones into best/ (never weights that diverged)."""
    from .checkpoint import non_finite
    from .training import Diverged

    if non_finite(job.model.param_arrays()):  # the loss is read a few minibatches late: the weights blew up first
        where = position or {"epochs_done": job.history.epochs_done() - 1, "batch": None}
        raise Diverged(None, where["batch"], where["epochs_done"] + 1)
    _save(job, "checkpoint", position=position)
    if job.best is not None:
        epoch, val, arrays = job.best
        _save(job, "best", model_arrays=arrays, history=job.history.until(epoch),
              position={"best_epoch": epoch, "best_val_perplexity": val})


def run(job):
    """Train, saving every --save-every minutes; returns 'done', 'stopped' (Ctrl-C) or 'time' (--minutes)."""
    from tqdm.auto import tqdm

    from .training import evaluate_perplexity, num_batches, train

    cfg, log = job.cfg, tqdm.write
    total = num_batches(len(job.data.corpus), num_steps=cfg.steps, batch_size=cfg.batch_size,
                        is_random_iter=cfg.sampling == "random")
    epochs = cfg.epochs or (None if cfg.minutes else 500)
    deadline = time.time() + 60 * cfg.minutes if cfg.minutes else math.inf
    last_save, outcome = time.time(), "done"
    print(f"training {cfg.model} ({cfg.layers} x {cfg.hidden} hidden) on {len(job.data.corpus):,} {cfg.token}s, "
          f"vocabulary {len(job.data.idx_to_char)}, {cfg.sampling} sampling, "
          f"{epochs or 'unlimited'} epochs{f' or {cfg.minutes:g} minutes' if cfg.minutes else ''} on {job.ctx} "
          f"with {os.environ.get('OMP_NUM_THREADS', 'default')} threads", file=sys.stderr)
    if job.data.skipped:
        shown = ", ".join(repr(t) for t in sorted(job.data.skipped, key=job.data.skipped.get, reverse=True)[:5])
        print(f"held-out text: {sum(job.data.skipped.values())} {cfg.token}s outside the training vocabulary "
              f"are left out ({shown})", file=sys.stderr)

    def on_epoch(epoch, history):
        random.seed(cfg.seed * 1_000_003 + epoch + 1)  # the next epoch's random windows, repeatable on resume
        _note_val(job, epoch, history.val_perplexity[-1])

    epoch_start = {}

    def on_batch(epoch, done, meter):
        nonlocal last_save, outcome
        started = epoch_start.setdefault(epoch, time.time())
        if cfg.eval_every and job.data.val is not None and done % cfg.eval_every == 0 and done < total:
            from .training import perplexity

            val = evaluate_perplexity(job.model, job.data.val, ctx=job.ctx, num_steps=cfg.steps,
                                      batch_size=cfg.batch_size)
            job.history.add(perplexity(meter.running()), time.time() - started, val, fraction=done / total)
            _note_val(job, job.history.epoch[-1], val, log)
        if (stop.requested or time.time() >= deadline) and done < total:  # at the last one, let the epoch end
            from .training import perplexity

            outcome = "stopped" if stop.requested else "time"
            job.position = {"epochs_done": epoch - 1, "batch": done}
            job.partial = (perplexity(meter.running()), time.time() - started, done / total)
            return True
        if time.time() - last_save >= 60 * cfg.save_every:
            meter.mean()  # a loss that diverged stops training here, before its weights are saved
            _save_all(job, position={"epochs_done": epoch - 1, "batch": done})
            last_save = time.time()
        return False

    random.seed(cfg.seed * 1_000_003 + job.history.epochs_done() + 1)
    with StopOnSignal() as stop:
        train(job.model, job.data.corpus, ctx=job.ctx, num_epochs=epochs, num_steps=cfg.steps,
              batch_size=cfg.batch_size, clipping_theta=cfg.clip, optimizer=job.optimizer,
              is_random_iter=cfg.sampling == "random", val_corpus=job.data.val, history=job.history,
              idx_to_char=job.data.idx_to_char, char_to_idx=job.data.char_to_idx, prefixes=job.prefixes,
              pred_period=cfg.pred_period, pred_len=cfg.pred_len, on_epoch=on_epoch, on_batch=on_batch,
              start_batch=job.start_batch, progress=True, log=log)
    return outcome


# --- finishing -----------------------------------------------------------------------------------

def _write_atomically(path, write):
    """Write a file through a temporary neighbour and a rename, so it is never half written."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a run that was killed while writing
        if stale.is_file():
            stale.unlink(missing_ok=True)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def finish(job):
    """Score the final weights, save the checkpoint(s), history.csv, perplexity.png and samples.txt."""
    from .generation import generate
    from .plot import save_perplexity_plot
    from .training import evaluate_perplexity

    out, cfg, h = Path(job.cfg.out), job.cfg, job.history
    score = dict(train=evaluate_perplexity(job.model, job.data.corpus[:SUMMARY_TOKENS], ctx=job.ctx,
                                           num_steps=cfg.steps, batch_size=cfg.batch_size))
    if job.data.val is not None:
        if job.partial is None and h.val_perplexity and h.val_perplexity[-1] is not None:
            score["val"] = h.val_perplexity[-1]  # the weights of the last epoch's end, already scored
        else:
            score["val"] = evaluate_perplexity(job.model, job.data.val, ctx=job.ctx, num_steps=cfg.steps,
                                               batch_size=cfg.batch_size)
    if job.partial is not None:  # stopped inside an epoch: record how far it got
        ppl, seconds, fraction = job.partial
        h.add(ppl, seconds, score.get("val"), fraction=fraction)
        _note_val(job, h.epoch[-1], score.get("val"))
    _save_all(job, position=job.position)
    _write_atomically(out / "history.csv", h.to_csv)
    if h.epoch:
        _write_atomically(out / "perplexity.png", lambda p: save_perplexity_plot(
            h, p, baseline=len(job.data.idx_to_char), file_format="png"))
    samples = [generate(job.model, p, 200, ctx=job.ctx, idx_to_char=job.data.idx_to_char,
                        char_to_idx=job.data.char_to_idx) for p in job.prefixes]
    _write_atomically(out / "samples.txt", lambda p: p.write_text("\n\n".join(samples) + "\n", encoding="utf-8"))
    return score


def _ppl(value, token):
    """'5.123 (2.36 bits/char)'."""
    return f"{value:.3f} ({math.log2(value):.2f} bits/{token})" if value > 0 and math.isfinite(value) else f"{value}"


def summary(job, score):
    """The closing lines: the running training perplexity and what the final (and best) weights score."""
    h, token, out = job.history, job.cfg.token, job.cfg.out
    lines = []
    if h.epoch:
        lines.append(f"epoch {h.epoch[-1]:g}: training perplexity {_ppl(h.perplexity[-1], token)}, averaged over "
                     "the epoch while the weights were still changing")
    what = ("the training text" if len(job.data.corpus) <= SUMMARY_TOKENS
            else f"the first {SUMMARY_TOKENS:,} {token}s of the training text")
    final = f"final weights: perplexity {_ppl(score['train'], token)} on {what}"
    lines.append(final + (f", {_ppl(score['val'], token)} on the held-out text" if "val" in score else ""))
    if job.best is not None:
        lines.append(f"best held-out perplexity {_ppl(job.best[1], token)} at epoch {job.best[0]:g}, "
                     f"saved in {out}/best/")
    lines.append(f"wrote {out}/ (checkpoint/, history.csv, perplexity.png, samples.txt)")
    return "\n".join(lines)


def train_command(cfg):
    """The main job: prepare, train, save, and say what was written; returns the exit status."""
    from .training import Diverged

    job = prepare(cfg)
    try:
        outcome = run(job)
        score = finish(job)
    except Diverged as err:
        kept = f"; the last good checkpoint in {cfg.out} is kept" if (Path(cfg.out) / "checkpoint").exists() else ""
        raise Diverged(err.value, err.batch, err.epoch, note=f"(now --lr {cfg.lr:g}, --clip {cfg.clip:g}){kept}") \
            from None
    print(summary(job, score), file=sys.stderr)
    if outcome == "stopped":
        where = job.position
        print(f"interrupted in epoch {where['epochs_done'] + 1} after minibatch {where['batch']}: saved "
              f"{cfg.out}/checkpoint; continue with --resume {cfg.out}", file=sys.stderr)
        return 130
    return 0


# --- generate and evaluate -----------------------------------------------------------------------

def _load(path, ctx, prefer_best):
    """A checkpoint for generate/evaluate: best/ of a run folder when there is one."""
    from .checkpoint import load_checkpoint

    return load_checkpoint(path, ctx, prefer_best=prefer_best)


def generate_command(args):
    """Print text generated from a checkpoint."""
    from .data import preprocess
    from .generation import generate

    from .generation import check_sampling_args

    if args.length < 0:
        raise UsageError(f"--length must be >= 0, got {args.length}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {args.seed}")
    try:
        check_sampling_args(args.temperature, args.top_k)
    except ValueError as err:
        raise UsageError(f"--temperature/--top-k: {err}") from None
    ctx = resolve_ctx(args.ctx)
    ckpt = _load(args.checkpoint, ctx, prefer_best=True)
    saved = {**asdict(TrainConfig()), **ckpt.config}
    style = saved["preprocess"] or ("lecture" if saved["text"] else CORPORA[saved["corpus"]].preprocess)
    prefix = preprocess(args.prefix, style) if saved["token"] == "char" else args.prefix
    sampling = args.temperature is not None or args.top_k is not None
    try:
        text = generate(ckpt.model, prefix, args.length, ctx=ctx, idx_to_char=ckpt.idx_to_char,
                        char_to_idx=ckpt.char_to_idx, top_k=args.top_k, seed=args.seed,
                        temperature=(1.0 if args.temperature is None else args.temperature) if sampling else None)
    except ValueError as err:
        raise UsageError(f"--prefix: {err}") from None
    print(text)
    note = f"; the prefix was preprocessed like the training text ({style}): {prefix!r}" if prefix != args.prefix else ""
    print(f"generated with {ckpt.folder}{note}", file=sys.stderr)
    return 0


def evaluate_command(args):
    """Print the perplexity of a checkpoint on a text, without training."""
    from . import data
    from .training import evaluate_perplexity

    ctx = resolve_ctx(args.ctx)
    ckpt = _load(args.checkpoint, ctx, prefer_best=not args.last)
    saved = TrainConfig(**{k: v for k, v in {**asdict(TrainConfig()), **ckpt.config}.items()
                           if k in {f.name for f in fields(TrainConfig)}})
    if args.text or args.corpus:
        saved.text, saved.corpus = args.text, args.corpus or saved.corpus
        if args.split == "val" and not (saved.val_chars or saved.val_fraction):
            args.split = "all"
    if args.split == "val" and not (saved.val_chars or saved.val_fraction):
        raise UsageError(f"{ckpt.folder} was trained without held-out text: give --text or --corpus to score "
                         "a text, or --split train")
    style, num_chars = saved.data_settings()
    text = data.preprocess(read_source(saved), style)
    if args.split != "all":
        try:
            train_text, val_text = data.split_text(text, num_chars=num_chars, val_chars=saved.val_chars,
                                                   val_fraction=saved.val_fraction)
        except ValueError as err:
            raise UsageError(f"this text does not have the checkpoint's split ({err}); use --split all") from None
        text = val_text if args.split == "val" else train_text
    indices, missing = data.encode(text, ckpt.char_to_idx, saved.token)
    steps = args.steps or saved.steps
    if len(indices) < steps + 1:
        raise UsageError(f"the text has {len(indices)} {saved.token}s in the vocabulary; scoring needs at "
                         f"least {steps + 1}")
    ppl = evaluate_perplexity(ckpt.model, indices, ctx=ctx, num_steps=steps, batch_size=args.batch_size)
    source = saved.text or saved.corpus
    report = {"source": source, "split": args.split, "tokens": int(len(indices)), "perplexity": ppl,
              "bits_per_token": math.log2(ppl) if ppl > 0 and math.isfinite(ppl) else None,
              "outside_vocabulary": int(sum(missing.values()))}
    print(f"{source} ({args.split}, {len(indices):,} {saved.token}s): perplexity {_ppl(ppl, saved.token)}")
    if missing:
        shown = ", ".join(repr(t) for t, _ in missing.most_common(5))
        print(f"{sum(missing.values())} {saved.token}s outside the model's vocabulary were left out ({shown})")
    if args.json:
        print(json.dumps(report))
    print(f"scored {ckpt.folder}", file=sys.stderr)
    return 0


def _read_bytes(path, what):
    """The bytes of an input file, with a one-line error if it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"{what} {path}: {err.strerror or err}") from None


def _write_output(path, data, source):
    """Write the result next to nothing it would destroy: never over its own input."""
    out = Path(path)
    if out.exists() and out.resolve() == Path(source).resolve():
        raise UsageError(f"{path} is also the input: give another output file")
    try:
        _write_atomically(out, lambda p: p.write_bytes(data))
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None


def compress_command(args):
    """Compress a UTF-8 text file with a checkpoint's model."""
    from . import compress as cz

    if args.lanes < 1:
        raise UsageError(f"--lanes must be at least 1, got {args.lanes}")
    raw = _read_bytes(args.input, "input")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{args.input} is not UTF-8 text ({err.reason} at byte {err.start}); compress text files "
                         "only") from None
    ctx = resolve_ctx(args.ctx)
    ckpt = _load(args.checkpoint, ctx, prefer_best=True)
    if ckpt.config.get("token", "char") != "char":
        raise UsageError(f"{ckpt.folder} is a word-level model: compression works with character models")
    start = time.time()
    data = cz.compress(text, ckpt.model, char_to_idx=ckpt.char_to_idx, ctx=ctx, lanes=args.lanes)
    seconds = time.time() - start
    _write_output(args.output, data, args.input)
    rate = 8 * len(data) / max(len(text), 1)
    print(f"{len(text):,} characters ({len(raw):,} bytes) -> {len(data):,} bytes, {rate:.3f} bits per character, "
          f"{len(text) / max(seconds, 1e-9):,.0f} characters/s; model {ckpt.folder}", file=sys.stderr)
    return 0


def decompress_command(args):
    """Restore a text compressed by `compress` (with the same checkpoint)."""
    from . import compress as cz

    data = _read_bytes(args.input, "input")
    cz.read_header(data)  # a file that is not ours fails before the model loads
    ctx = resolve_ctx(args.ctx)
    ckpt = _load(args.checkpoint, ctx, prefer_best=True)
    text = cz.decompress(data, ckpt.model, idx_to_char=ckpt.idx_to_char, ctx=ctx)
    _write_output(args.output, text.encode("utf-8"), args.input)
    print(f"{len(data):,} bytes -> {len(text):,} characters, checksum verified; model {ckpt.folder}", file=sys.stderr)
    return 0


# --- the parser ----------------------------------------------------------------------------------

def build_parser():
    """The `d2lrnn` argument parser with its train, generate and evaluate commands."""
    d = TrainConfig()
    parser = Parser(prog="d2lrnn", description="Train, sample and score the STAT 157 lecture's character RNN.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    t = sub.add_parser("train", help="train a model and write curves, samples and checkpoints")
    g = t.add_argument_group("model")
    g.add_argument("--model", choices=list(MODELS), default=d.model,
                   help="; ".join(f"{name}: {spec.summary}" for name, spec in MODELS.items()))
    g.add_argument("--hidden", type=int, default=d.hidden, help="hidden units per layer (default %(default)s)")
    g.add_argument("--layers", type=int, default=d.layers, help="recurrent layers (default %(default)s)")
    g.add_argument("--embed", type=int, default=d.embed, help="embedding size; 0: one-hot input (default)")
    g.add_argument("--dropout", type=float, default=d.dropout, help="dropout between layers (default 0)")
    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="epochs to train (default 500, or until --minutes runs out)")
    g.add_argument("--minutes", type=float, help="stop after this many minutes of training")
    g.add_argument("--steps", type=int, default=d.steps, help="time steps per minibatch (num_steps)")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--optimizer", choices=["sgd", "adam"], default=d.optimizer)
    g.add_argument("--lr", type=float, default=d.lr, help="learning rate (default %(default)s; try 0.002 with adam)")
    g.add_argument("--clip", type=float, default=d.clip, help="gradient clipping threshold theta (inf: off)")
    g.add_argument("--sampling", choices=["random", "sequential"], default=d.sampling)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--ctx", choices=["auto", "cpu", "gpu"], default=d.ctx)
    g.add_argument("--threads", default=d.threads,
                   help="OpenMP threads for MXNet: a number, or auto (default): every CPU for the fused "
                        "gluon-* models, MXNet's own default for the others; OMP_NUM_THREADS, if set, wins")
    g = t.add_argument_group("data")
    g.add_argument("--corpus", choices=list(CORPORA), default=d.corpus, help="built-in text (default %(default)s)")
    g.add_argument("--text", help="train on this UTF-8 file instead of a built-in corpus")
    g.add_argument("--preprocess", choices=list(PREPROCESS),
                   help="lecture: lower case, line breaks as spaces (default for timemachine and --text); "
                        "raw: as is (default for tinyshakespeare); letters: homework 8's letters and spaces")
    g.add_argument("--token", choices=["char", "word"], default=d.token)
    g.add_argument("--num-chars", type=int, help="characters to train on (default: 10000 of timemachine, "
                                                 "else all but the held-out text)")
    g.add_argument("--val-chars", type=int, default=d.val_chars,
                   help="hold out this many characters after the training text (the end, without --num-chars)")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="hold out this fraction at the end of the text (0.1: nanoGPT's split)")
    g = t.add_argument_group("output")
    g.add_argument("--out", default=d.out, help="output folder (default %(default)s)")
    g.add_argument("--resume", help="continue training from this run folder or checkpoint")
    g.add_argument("--overwrite", action="store_true", help="replace the model already in --out")
    g.add_argument("--prefix", action="append", help="start of the samples shown while training (repeatable; "
                                                     "default: the text's first word)")
    g.add_argument("--pred-period", type=int, default=d.pred_period, help="epochs between samples")
    g.add_argument("--pred-len", type=int, default=d.pred_len, help="length of those samples")
    g.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="also score the held-out text every this many minibatches (0: at epoch ends only)")
    g.add_argument("--save-every", type=float, default=d.save_every,
                   help="minutes between checkpoints while training (default %(default)s)")

    g = sub.add_parser("generate", help="print text generated by a trained checkpoint")
    g.add_argument("--checkpoint", required=True, help="a run folder (its best/ if any, else checkpoint/) or a "
                                                       "checkpoint folder")
    g.add_argument("--prefix", required=True)
    g.add_argument("--length", type=int, default=100)
    g.add_argument("--temperature", type=float, help="sample instead of argmax, at this temperature")
    g.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    g.add_argument("--seed", type=int, help="seed for sampling")
    g.add_argument("--ctx", choices=["auto", "cpu", "gpu"], default="auto")

    e = sub.add_parser("evaluate", help="perplexity of a checkpoint on a text, without training")
    e.add_argument("--checkpoint", required=True, help="a run folder (its best/ if any) or a checkpoint folder")
    e.add_argument("--last", action="store_true", help="score checkpoint/ even when the run has a best/")
    e.add_argument("--text", help="score this UTF-8 file (preprocessed like the training text)")
    e.add_argument("--corpus", choices=list(CORPORA), help="score this built-in corpus")
    e.add_argument("--split", choices=["val", "train", "all"], default="val",
                   help="the checkpoint's held-out part (default), its training part, or the whole text")
    e.add_argument("--steps", type=int, help="window length (default: the checkpoint's)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    e.add_argument("--ctx", choices=["auto", "cpu", "gpu"], default="auto")

    for name, what in (("compress", "compress a UTF-8 text with a checkpoint's model (range coding)"),
                       ("decompress", "restore a text written by compress, with the same checkpoint")):
        c = sub.add_parser(name, help=what)
        c.add_argument("--checkpoint", required=True, help="a run folder (its best/ if any) or a checkpoint folder")
        c.add_argument("input")
        c.add_argument("output")
        if name == "compress":
            c.add_argument("--lanes", type=int, default=16, help="pieces of the text coded side by side (default 16)")
        c.add_argument("--ctx", choices=["auto", "cpu", "gpu"], default="auto")
    return parser


def wanted_threads(argv, environ):
    """The environment `python -m d2lrnn ARGV` should run in, or None if this one will do.

    MXNet reads its OpenMP thread count once, when it is imported, and by default uses half the
    CPUs (MXNet assumes hyper-threading). The fused models run about 1.7x faster with every CPU of
    a 2-core machine; the from-scratch cells, which interleave Python and many small operators, run
    best with MXNet's default. OMP_NUM_THREADS (or MXNET_OMP_MAX_THREADS) set by the user always wins.
    """
    if "OMP_NUM_THREADS" in environ or "MXNET_OMP_MAX_THREADS" in environ:
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("command", nargs="?")
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--model", default=TrainConfig.model)
    args, _ = parser.parse_known_args(argv)
    if args.command != "train":
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if args.threads == "auto":
        threads = cpus if args.model.startswith("gluon-") else None
    elif args.threads.isdigit() and int(args.threads) >= 1:
        threads = int(args.threads)
    else:
        return None  # main reports the bad value
    if threads is None or threads == max(1, cpus // 2):
        return None
    # PASSIVE: idle OpenMP threads sleep instead of spinning, so a busy machine does not collapse
    return {**environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def run_as_program():
    """`python -m d2lrnn` and the `d2lrnn` script: restart once with the thread settings the job wants."""
    env = wanted_threads(sys.argv[1:], os.environ)
    if env is not None:
        os.execve(sys.executable, [sys.executable, "-m", "d2lrnn", *sys.argv[1:]], env)
    sys.exit(main())


def main(argv=None):
    """Entry point; returns the exit status (2 for a mistake, with one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "generate":
            return generate_command(args)
        if args.command == "evaluate":
            return evaluate_command(args)
        if args.command in ("compress", "decompress"):
            return (compress_command if args.command == "compress" else decompress_command)(args)
        names = {f.name for f in fields(TrainConfig)}
        return train_command(TrainConfig(**{k: v for k, v in vars(args).items() if k in names}))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
