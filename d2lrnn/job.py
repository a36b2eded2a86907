"""The main job, from settings to saved files; `d2lrnn train` is `main_job(TrainConfig(...))`.

prepare: check everything that can be checked before the first minibatch (settings, the output folder
and its lock, the text, the prefixes, the model's size, a checkpoint to resume, the best model so far).
run: the one training loop, with hooks for held-out checks, the best weights, stop signals, the time
limit and periodic saves. finish: score the final weights, save everything together, summarise.
"""
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import signals
from .baselines import bits_per_char
from .checkpoint import CheckpointError, SaveError, load_checkpoint, non_finite
from .config import MODEL_KEYS, flag, validate
from .data import DataError, default_prefixes, load_split, unknown_fate
from .generation import generate
from .optim import make_optimizer
from .plot import check_can_draw, save_perplexity_plot
from .registry import build_model, check_fits
from .runfolder import RunFolder
from .training import (
    Diverged,
    History,
    Hook,
    KeepBest,
    LRSchedule,
    Preview,
    TrainOptions,
    check_prefixes,
    evaluate_perplexity,
    num_batches,
    perplexity,
    train,
)
from .utils import UserError, num_gpus, quoted, set_seed, try_gpu

SUMMARY_TOKENS = 200_000  # the final weights are scored on at most this much of the training text
SAMPLE_LENGTH = 200       # characters of each sample written to samples.txt


def err(message):
    """Print one line on stderr (the command line's channel for everything but results)."""
    print(message, file=sys.stderr)


def resolve_ctx(name):
    """'auto' | 'cpu' | 'gpu' -> an MXNet context; asking for an absent GPU is an error."""
    import mxnet as mx

    if name == "auto":
        return try_gpu()
    if name == "cpu":
        return mx.cpu()
    if num_gpus() == 0:
        raise UserError("--ctx gpu: MXNet sees no usable GPU (this is the CPU build, or CUDA 11 libraries "
                        "are missing; see the README's GPU section). Use --ctx cpu or auto.")
    return mx.gpu(0)


def held_out_id(split):
    """A fingerprint of the held-out text as the model reads it (its tokens and the vocabulary)."""
    h = hashlib.sha256(json.dumps(split.idx_to_char, ensure_ascii=False).encode())
    h.update(np.asarray(split.val, dtype="<i4").tobytes())
    return h.hexdigest()


@dataclass
class Job:
    """Everything a training run needs, prepared and checked before the first minibatch."""

    cfg: object
    ctx: object
    folder: RunFolder
    split: object
    prefixes: tuple
    model: object
    optimizer: object
    history: History
    start_batch: int = 0
    keep: KeepBest = None     # this run's best held-out weights (only better than best/ already holds)
    held_out: str = None      # held_out_id of the held-out text
    fresh: bool = False       # --overwrite: the first save also clears what an earlier run left
    saved: bool = False       # this run has saved at least once
    best_saved: object = None  # the epoch whose weights best/ holds, when this run wrote it
    position: dict = None     # where a stop inside an epoch left training


# --- prepare -------------------------------------------------------------------------------------

def _load_split(cfg):
    """The text as the run reads it, and the checks that need it (windows fit, enough held out)."""
    source = cfg.source()
    try:
        split = load_split(source)
    except DataError:
        raise
    except ValueError as e:
        raise UserError(f"{e} (--num-chars, --val-chars, --val-fraction)") from None
    batches = num_batches(len(split.corpus), num_steps=cfg.steps, batch_size=cfg.batch_size,
                          is_random_iter=cfg.sampling == "random")
    if batches < 1:
        raise UserError(f"the training text has {len(split.corpus):,} {cfg.token}s: too short for one "
                        f"minibatch of --batch-size {cfg.batch_size} x --steps {cfg.steps} ({cfg.sampling} "
                        "sampling); use more text (--num-chars) or smaller --batch-size/--steps")
    if split.val is not None and len(split.val) < cfg.steps + 1:
        what = flag("val_chars") if cfg.val_chars else flag("val_fraction")
        raise UserError(f"{what}: the held-out text has {len(split.val)} {cfg.token}s in the training "
                        f"vocabulary; hold out at least one window of --steps {cfg.steps} and the {cfg.token}"
                        f" after it ({cfg.steps + 1})")
    return split, batches


def _resume(cfg, split, ctx, batches):
    """(model, history, optimizer arrays, start batch) from a checkpoint that fits this run."""
    try:
        ckpt = load_checkpoint(cfg.resume, ctx)
    except CheckpointError as e:
        raise UserError(f"--resume {quoted(cfg.resume)}: {e}") from None
    saved = ckpt.settings
    for key in MODEL_KEYS:
        if getattr(saved, key) != getattr(cfg, key):
            raise UserError(f"--resume {quoted(cfg.resume)}: the checkpoint has {key}={getattr(saved, key)!r}"
                            f", this run {getattr(cfg, key)!r}; pass {flag(key)} {getattr(saved, key)} or "
                            "start afresh")
    if ckpt.idx_to_char != list(split.idx_to_char):
        raise UserError(f"--resume {quoted(cfg.resume)}: the checkpoint's vocabulary ({len(ckpt.idx_to_char)}"
                        f" tokens) differs from this text's ({len(split.idx_to_char)}); train on the same "
                        "text, --preprocess and --num-chars")
    position, start = ckpt.config.get("position") or {}, 0
    if position.get("epochs_done") == ckpt.history.epochs_done() and position.get("batch"):
        start = position["batch"]
        if start >= batches:
            raise UserError(f"--resume {quoted(cfg.resume)}: it stopped after minibatch {start:,} of an "
                            f"epoch, but this text, --batch-size and --steps make epochs of {batches:,}: "
                            "resume with the settings that saved it")
    return ckpt.model, ckpt.history, ckpt.optimizer_arrays, start


def _best_so_far(job):
    """A KeepBest that beats only what best/ already holds, scored on this run's held-out text."""
    if job.split.val is None:
        return None
    best_dir, threshold = job.folder.path / "best", math.inf
    if best_dir.exists() and not job.fresh:
        try:
            best = load_checkpoint(best_dir, job.ctx)
        except CheckpointError as e:
            raise UserError(f"{e}; move {quoted(best_dir)} away to continue this run") from None
        if best.idx_to_char != list(job.split.idx_to_char):
            raise UserError(f"{quoted(best_dir)} has another vocabulary than this text: move it away or "
                            "train on the text it was trained on")
        stored = best.config.get("held_out")
        if stored is not None and stored["sha256"] == job.held_out:
            threshold = stored["perplexity"]
        else:
            threshold = evaluate_perplexity(best.model, job.split.val, ctx=job.ctx)
            err(f"{quoted(best_dir)} was scored on other held-out text; on this run's it scores "
                f"{threshold:.3f}, the perplexity a new best must beat")
    return KeepBest(job.model, perplexity=threshold, rows_seen=len(job.history.epoch))


def prepare(cfg):
    """Check the settings, take the output folder, read the text, build (or resume) the model."""
    validate(cfg)
    folder = RunFolder(cfg.out).lock()
    try:
        out = Path(cfg.out).resolve()
        resuming_here = cfg.resume and Path(cfg.resume).resolve() in (out, out / "checkpoint")
        trained = folder.trained()
        if trained and not (cfg.overwrite or resuming_here):
            raise UserError(f"{quoted(cfg.out)} already holds a trained model ({', '.join(trained)}): choose "
                            f"another --out, continue it with --resume {quoted(cfg.out)}, or pass "
                            "--overwrite to replace it")
        folder.check_writable()
        check_can_draw()
        ctx = resolve_ctx(cfg.ctx)
        set_seed(cfg.seed)
        split, batches = _load_split(cfg)
        prefixes = default_prefixes(cfg.source(), split, cfg.prefix)
        try:
            check_prefixes(prefixes, split.char_to_idx, split.idx_to_char)
        except ValueError as e:
            raise UserError(f"--prefix: {e}") from None
        try:
            check_fits(cfg.model, vocab_size=len(split.idx_to_char), num_hiddens=cfg.hidden,
                       num_layers=cfg.layers, embed_size=cfg.embed, batch_size=cfg.batch_size,
                       num_steps=cfg.steps)
        except ValueError as e:
            raise UserError(f"--model {cfg.model}, --hidden {cfg.hidden}: {e}") from None
        if cfg.resume:
            model, history, opt_arrays, start_batch = _resume(cfg, split, ctx, batches)
        else:
            model = build_model(cfg.model, vocab_size=len(split.idx_to_char), num_hiddens=cfg.hidden, ctx=ctx,
                                num_layers=cfg.layers, embed_size=cfg.embed, dropout=cfg.dropout)
            history, opt_arrays, start_batch = History(), {}, 0
        optimizer = make_optimizer(cfg.optimizer, model.param_arrays(), cfg.lr)
        if opt_arrays:
            optimizer.load_state_arrays(opt_arrays)
        fresh = bool(cfg.overwrite and trained and not resuming_here)
        job = Job(cfg=cfg, ctx=ctx, folder=folder, split=split, prefixes=prefixes, model=model,
                  optimizer=optimizer, history=history, start_batch=start_batch, fresh=fresh,
                  held_out=None if split.val is None else held_out_id(split))
        job.keep = _best_so_far(job)
        return job
    except BaseException:
        folder.abandon()
        raise


# --- run -----------------------------------------------------------------------------------------

class StopWhen(Hook):
    """Stop at a stop signal, when time is up or after `max_steps` minibatches; remembers why and where."""

    def __init__(self, deadline, max_steps=math.inf):
        self.deadline, self.max_steps, self.reason, self.where = deadline, max_steps, None, None

    def on_batch(self, progress):
        signum = signals.requested()
        if signum is not None:
            self.reason = signum
        elif time.time() >= self.deadline:
            self.reason = "time"
        elif (progress.epoch - 1) * progress.batches + progress.batch >= self.max_steps:
            self.reason = "budget"
        if self.reason is not None:
            self.where = (progress.epoch, progress.batch, progress.batches)
        return self.reason is not None


class HeldOutEvery(Hook):
    """Score the held-out text every `every` minibatches within epochs, as a history row."""

    def __init__(self, job, every, log):
        self.job, self.every, self.log = job, every, log

    def on_batch(self, progress):
        if progress.batch % self.every == 0 and progress.batch < progress.batches:
            val = evaluate_perplexity(self.job.model, self.job.split.val, ctx=self.job.ctx)
            progress.history.add(perplexity(progress.meter.mean()), time.time() - progress.started, val,
                                 fraction=progress.batch / progress.batches)
            self.log(f"epoch {progress.history.epoch[-1]:.2f}: held-out perplexity {val:.3f}")
        return False


class PeriodicSave(Hook):
    """Save checkpoint/ (and best/) every `minutes` while training, never weights that diverged."""

    def __init__(self, job, minutes, stop):
        self.job, self.seconds, self.stop, self.last = job, 60 * minutes, stop, time.time()

    def on_batch(self, progress):
        due = time.time() - self.last >= self.seconds
        if due and self.stop.reason is None and progress.batch < progress.batches:
            progress.meter.mean()  # a loss that diverged stops training here, before its weights are saved
            save(self.job, position={"epochs_done": progress.epoch - 1, "batch": progress.batch})
            self.last = time.time()
        return False


def run(job):
    """Train; returns None when the epochs are done, "time" or "budget" when --minutes or --train-chars ran
    out, or the stop signal."""
    cfg, split = job.cfg, job.split
    from tqdm.auto import tqdm

    batches = num_batches(len(split.corpus), num_steps=cfg.steps, batch_size=cfg.batch_size,
                          is_random_iter=cfg.sampling == "random")
    budget = -(-cfg.train_chars // (cfg.steps * cfg.batch_size)) if cfg.train_chars else math.inf  # batches
    total = budget if cfg.train_chars else (cfg.num_epochs() or 0) * batches
    stop = StopWhen(time.time() + 60 * cfg.minutes if cfg.minutes else math.inf, max_steps=budget)
    schedule = LRSchedule(job.optimizer, cfg.lr, kind=cfg.lr_schedule, warmup=cfg.warmup, total=total)
    schedule.start(job.history.epochs_done() * batches + job.start_batch)
    checks = cfg.eval_every and split.val is not None
    hooks = [HeldOutEvery(job, cfg.eval_every, tqdm.write)] if checks else []
    hooks += [job.keep] if job.keep is not None else []
    hooks += [schedule, stop, PeriodicSave(job, cfg.save_every, stop)]
    options = TrainOptions(num_epochs=cfg.num_epochs(), num_steps=cfg.steps, batch_size=cfg.batch_size,
                           lr=cfg.lr, clipping_theta=cfg.clip, optimizer=job.optimizer,
                           is_random_iter=cfg.sampling == "random", seed=cfg.seed,
                           start_batch=job.start_batch)
    epochs, wait = cfg.num_epochs(), os.environ.get("OMP_WAIT_POLICY")
    threads = os.environ.get("OMP_NUM_THREADS", "MXNet's default number of")
    err(f"training {cfg.model} ({cfg.layers} x {cfg.hidden} hidden) on {len(split.corpus):,} {cfg.token}s, "
        f"vocabulary {len(split.idx_to_char)}, {cfg.sampling} sampling, {epochs or 'unlimited'} epochs"
        f"{f' or {cfg.minutes:g} minutes' if cfg.minutes else ''}"
        f"{f' or {cfg.train_chars:,} {cfg.token}s' if cfg.train_chars else ''} on {job.ctx} with {threads} "
        "OpenMP threads"
        + (f" (OMP_WAIT_POLICY={wait})" if wait else ""))
    if split.skipped:
        shown = ", ".join(repr(t) for t in sorted(split.skipped, key=split.skipped.get, reverse=True)[:5])
        err(f"held-out text: {sum(split.skipped.values())} {cfg.token}s outside the training vocabulary are "
            f"{unknown_fate(split.char_to_idx)} ({shown})")
    preview = Preview(job.prefixes, split.idx_to_char, split.char_to_idx, period=cfg.pred_period,
                      length=cfg.pred_len)
    train(job.model, split.corpus, options, ctx=job.ctx, val_corpus=split.val, history=job.history,
          hooks=hooks, preview=preview, log=tqdm.write, progress=True)
    if stop.where is not None and stop.where[1] < stop.where[2]:
        job.position = {"epochs_done": stop.where[0] - 1, "batch": stop.where[1]}
    return stop.reason


# --- saving and finishing ------------------------------------------------------------------------

def save(job, position=None, files=None):
    """Publish checkpoint/ (and best/, when this run found better held-out weights) with `files`, together."""
    if non_finite(job.model.param_arrays()):  # the loss is read a few minibatches late: the weights blew up
        where = position or {"epochs_done": job.history.epochs_done() - 1, "batch": None}
        raise Diverged(None, where["batch"], where["epochs_done"] + 1)
    cfg, split, keep = job.cfg, job.split, job.keep
    config = {**asdict(cfg), "position": position, "held_out": None}
    checkpoint = dict(model=job.model, idx_to_char=split.idx_to_char, config=config, history=job.history,
                      optimizer=job.optimizer)
    best = None
    if keep is not None and keep.arrays is not None and keep.epoch != job.best_saved:
        held_out = {"sha256": job.held_out, "perplexity": keep.perplexity}
        best = dict(model=job.model, idx_to_char=split.idx_to_char, history=job.history.until(keep.epoch),
                    arrays=keep.arrays, config={**config, "held_out": held_out,
                                                "position": {"best_epoch": keep.epoch,
                                                             "best_val_perplexity": keep.perplexity}})
    files = {"history.csv": job.history.to_csv, **(files or {})}
    if job.history.epoch:
        files["perplexity.png"] = lambda path: save_perplexity_plot(job.history, path, file_format="png",
                                                                    baseline=len(split.idx_to_char))
    with signals.saving():
        job.folder.publish(checkpoint=checkpoint, best=best, files=files, fresh=job.fresh and not job.saved)
    job.saved = True
    if best is not None:
        job.best_saved = keep.epoch


def finish(job):
    """Score the final weights; save the checkpoint(s), history.csv, perplexity.png and samples.txt."""
    split, h = job.split, job.history
    score = {"train": evaluate_perplexity(job.model, split.corpus[:SUMMARY_TOKENS], ctx=job.ctx)}
    if split.val is not None:
        measured = h.val_perplexity[-1] if h.epoch else None  # the last row is the final weights'
        if measured is None:
            measured = evaluate_perplexity(job.model, split.val, ctx=job.ctx)
        score["val"] = measured
    samples = [generate(job.model, p, SAMPLE_LENGTH, ctx=job.ctx, idx_to_char=split.idx_to_char,
                        char_to_idx=split.char_to_idx) for p in job.prefixes]
    text = "\n\n".join(samples) + "\n"
    def write_samples(path):
        path.write_text(text, encoding="utf-8")

    save(job, position=job.position, files={"samples.txt": write_samples})
    return score


def _ppl(value, token):
    """'5.123 (2.36 bits/char)'."""
    if not (value > 0 and math.isfinite(value)):
        return f"{value}"
    return f"{value:.3f} ({bits_per_char(value):.2f} bits/{token})"


def summary(job, score):
    """The closing lines: the running training perplexity and what the final (and best) weights score."""
    h, token, out = job.history, job.cfg.token, job.cfg.out
    lines = []
    if h.epoch:
        lines.append(f"epoch {h.epoch[-1]:g}: training perplexity {_ppl(h.perplexity[-1], token)}, averaged "
                     "over the epoch while the weights were still changing")
    what = ("the training text" if len(job.split.corpus) <= SUMMARY_TOKENS
            else f"the first {SUMMARY_TOKENS:,} {token}s of the training text")
    final = f"final weights: perplexity {_ppl(score['train'], token)} on {what}"
    lines.append(final + (f", {_ppl(score['val'], token)} on the held-out text" if "val" in score else ""))
    keep = job.keep
    if keep is not None and keep.epoch is not None:
        lines.append(f"best held-out perplexity {_ppl(keep.perplexity, token)} at epoch {keep.epoch:g}, "
                     f"saved in {out}/best/")
    elif keep is not None and keep.perplexity < math.inf:
        lines.append(f"{out}/best/ kept: its held-out perplexity {_ppl(keep.perplexity, token)} was not "
                     "beaten")
    lines.append(f"wrote {out}/ (checkpoint/, history.csv, perplexity.png, samples.txt)")
    return "\n".join(lines)


def _kept(job):
    """What a failed run leaves for the user, in words."""
    out = quoted(Path(job.cfg.out) / "checkpoint")
    if job.saved:
        return f"this run's last save is kept in {out}"
    if job.cfg.resume:
        return f"nothing new was saved; the checkpoint it resumed from ({quoted(job.cfg.resume)}) is kept"
    if job.fresh:
        return (f"nothing of this run was saved; {quoted(job.cfg.out)} still holds the earlier model, not "
                "overwritten")
    return "nothing was saved"


def main_job(cfg):
    """The main job: prepare, train, save, and say what was written; returns the exit status."""
    with signals.handling():
        job = prepare(cfg)
        signals.set_exit_note(lambda: _kept(job))
        try:
            if signals.requested() is not None:  # arrived while MXNet loaded or the text was read
                signum = signals.requested()
                err(f"stopped by {signals.describe(signum)} before training started: nothing was written")
                job.folder.abandon()
                return signals.exit_status(signum)
            reason = run(job)
            score = finish(job)
        except Diverged as e:
            raise Diverged(e.value, e.batch, e.epoch, note=f"(now --lr {cfg.lr:g}, --clip {cfg.clip:g}); "
                                                           f"{_kept(job)}") from None
        except signals.StopNow as stop:
            raise UserError(f"stopped at once by {signals.describe(stop.signum)}: {_kept(job)}",
                            exit_code=signals.exit_status(stop.signum)) from None
        except SaveError as e:
            raise SaveError(f"{e}; {_kept(job)}") from None
        finally:
            job.folder.unlock()
    err(summary(job, score))
    if reason in (None, "time", "budget"):
        return 0
    if job.position is not None:
        where = f"in epoch {job.position['epochs_done'] + 1} after minibatch {job.position['batch']}"
    else:
        where = f"after epoch {job.history.epochs_done()}"
    err(f"stopped by {signals.describe(reason)} {where}: saved {cfg.out}/checkpoint; continue with --resume "
        f"{quoted(cfg.out)}")
    return signals.exit_status(reason)
