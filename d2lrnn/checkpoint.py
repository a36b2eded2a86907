"""Checkpoints: a model's weights in MXNet's format, its vocabulary, config and history as text, all checked.

A checkpoint is a folder holding params.nd, vocab.json, config.json, history.csv, optimizer.nd (when
the optimiser has state) and manifest.json, the SHA-256 of every other file. A save writes a new
folder beside the old one and swaps the two with renames, so a crash at any moment leaves a whole
checkpoint behind (in the folder, or as `.<name>-old` until the next save restores it). Loading checks
every file against the manifest and refuses non-finite weights, with one line naming what is wrong.
"""
import contextlib
import csv
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mxnet import nd
from mxnet.base import MXNetError

from . import signals
from .config import BIG, from_dict
from .registry import build_from_config, check_fits
from .training import History
from .utils import UserError, file_digest, quoted

PARAMS_FILE, VOCAB_FILE, CONFIG_FILE, HISTORY_FILE = "params.nd", "vocab.json", "config.json", "history.csv"
OPTIMIZER_FILE, MANIFEST_FILE = "optimizer.nd", "manifest.json"
FORMAT = 3  # bump when the layout or a meaning changes; 1 had no manifest; in 2, rnn/gru/lstm meant *-bptt


PRETRAINED = Path(__file__).resolve().parent / "pretrained"
# shakespeare-lstm (1.4 MB): the fused LSTM of the README's Tiny Shakespeare results, made by
#   python -m d2lrnn train --corpus tinyshakespeare --model gluon-lstm --hidden 256 --optimizer adam \
#       --lr 0.002 --clip 1 --val-fraction 0.1 --epochs 20 --steps 64 --batch-size 64 --out runs/shakespeare
# (its best/ folder; held-out perplexity 5.004, 1.610 nats per character, after 20 epochs / 9.9 minutes here)
# timemachine-rnn (1.2 MB): the lecture's RNN (the `rnn` step function, 512 hidden, 35 steps, batch 32,
#   lr 100, clipping 0.01, sequential, 500 epochs, seed 0: the main job's defaults), for notebooks 4, 5, 11:
#   python -m d2lrnn train --out runs/timemachine-rnn
# (its checkpoint/ folder, the last weights: training perplexity 1.109 in epoch 500; evaluate_perplexity
# gives those weights 2.075 on the 10,000 characters; 3-5 minutes on 2 cores; the run is deterministic)


def pretrained(name="shakespeare-lstm"):
    """The folder of a checkpoint shipped with d2lrnn (load it with load_checkpoint)."""
    folder = PRETRAINED / name
    if not folder.is_dir():
        names = ", ".join(sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir()))
        raise CheckpointError(f"no shipped checkpoint called {name!r} (there are: {names or 'none'})")
    return folder


class CheckpointError(UserError):
    """A checkpoint that is missing, incomplete, damaged or does not fit what it is loaded for."""


@dataclass
class Checkpoint:
    """What load_checkpoint returns: the rebuilt model and everything saved with it."""

    model: object
    idx_to_char: list
    char_to_idx: dict
    config: dict           # as saved (with format 2's model names updated)
    settings: object       # the same settings as a checked TrainConfig
    history: History
    optimizer_arrays: dict
    folder: Path


def fsync(path):
    """Flush a file or folder to disk, so a power cut cannot undo a rename that followed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SaveError(UserError):
    """A file could not be written (disk full, no permission, read-only): what was saved before is kept."""

    exit_code = 1


def _reason(err):
    """The short reason of an OSError or an MXNetError (MXNet's text starts with its own traceback)."""
    if isinstance(err, OSError):
        return err.strerror or str(err)
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    marked = [line[len("MXNetError:"):].strip() for line in lines if line.startswith("MXNetError:")]
    reason = marked[-1] if marked else lines[-1] if lines else type(err).__name__
    if "Write incomplete" in reason:  # MXNet's words for a write the disk did not take
        return "the disk is full or refused the write (MXNet: FileStream.Write incomplete)"
    return reason


@contextlib.contextmanager
def writing(path, shown=None):
    """Turn a failed write of `path` into one SaveError naming it (or `shown`, the name it is written for)."""
    try:
        yield path
    except (OSError, MXNetError) as err:
        raise SaveError(f"cannot write {quoted(shown or path)}: {_reason(err)}") from None


def remove(path):
    """Remove a file, a symlink (not what it points to) or a folder, if there is one."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def atomic_write(path, write):
    """Write a file through a temporary neighbour and a rename, so it is never seen half written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with writing(path), signals.writing_file(tmp):
            write(tmp)
            fsync(tmp)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def non_finite(arrays):
    """Indices of the arrays that hold a NaN or an infinity."""
    return [i for i, a in enumerate(arrays) if not np.isfinite(a.asnumpy()).all()]


def _old(directory):
    """Where the previous checkpoint waits while a save swaps folders."""
    return directory.with_name(f".{directory.name}-old")


def clean_leftovers(directory):
    """Undo what a save killed half-way left behind: stale new folders, a displaced old checkpoint."""
    for stale in directory.parent.glob(f".{directory.name}-new-*"):
        remove(stale)
    old = _old(directory)
    if old.is_symlink() or old.is_file():   # not something a save leaves: a stray file
        old.unlink()
    elif old.is_dir():
        if directory.is_dir() and not directory.is_symlink():  # the swap finished; the clean-up did not
            shutil.rmtree(old)
        elif not directory.exists() and not directory.is_symlink():  # cut between the renames: put it back
            os.replace(old, directory)


def write_checkpoint(folder, model, idx_to_char, *, config=None, history=None, optimizer=None, arrays=None,
                     shown=None):
    """Write every file of a checkpoint into a new folder (nothing is replaced); returns the folder.

    arrays: the weights to save, if not the model's own (e.g. a KeepBest copy); shown: the folder named in
    error messages (the one this folder will replace)."""
    if model.config is None:
        raise ValueError("only models built by the registry can be saved (d2lrnn.build_model): a checkpoint "
                         "records the model's name so that it can be rebuilt")
    arrays = model.param_arrays() if arrays is None else arrays
    bad = non_finite(arrays)
    if bad:
        raise ValueError(f"refusing to save non-finite weights (arrays {bad} hold NaN or inf): the model "
                         "has diverged; the previous checkpoint is kept")
    folder, shown = Path(folder), Path(shown or folder)
    with writing(folder, shown):
        folder.mkdir()
    with writing(folder / PARAMS_FILE, shown / PARAMS_FILE) as path:
        nd.save(str(path), {f"param{i:02d}": a for i, a in enumerate(arrays)})
    opt_arrays = optimizer.state_arrays() if optimizer is not None else {}
    if opt_arrays:
        with writing(folder / OPTIMIZER_FILE, shown / OPTIMIZER_FILE) as path:
            nd.save(str(path), opt_arrays)
    full_config = {**(config or {}), **model.config, "format": FORMAT}
    texts = {VOCAB_FILE: json.dumps(list(idx_to_char), ensure_ascii=False),
             CONFIG_FILE: json.dumps(full_config, indent=2, sort_keys=True)}
    for name, text in texts.items():
        with writing(folder / name, shown / name) as path:
            path.write_text(text, encoding="utf-8")
    with writing(folder / HISTORY_FILE, shown / HISTORY_FILE) as path:
        (history if history is not None else History()).to_csv(path)
    files = sorted(p.name for p in folder.iterdir())
    manifest = {"format": FORMAT, "sha256": {name: file_digest(folder / name, "sha256") for name in files}}
    with writing(folder / MANIFEST_FILE, shown / MANIFEST_FILE) as path:
        path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        for name in files + [MANIFEST_FILE]:
            fsync(folder / name)
    return folder


def swap_in(new, directory):
    """Put a written checkpoint folder in place of `directory` with renames (a crash leaves one whole)."""
    if directory.exists():
        os.replace(directory, _old(directory))
    os.replace(new, directory)
    fsync(directory.parent)
    shutil.rmtree(_old(directory), ignore_errors=True)


def save_checkpoint(directory, model, idx_to_char, *, config=None, history=None, optimizer=None):
    """Save a registry model into `directory`, replacing its checkpoint only once the new one is whole."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(directory)
    new = directory.with_name(f".{directory.name}-new-{os.getpid()}")
    try:
        write_checkpoint(new, model, idx_to_char, config=config, history=history, optimizer=optimizer,
                         shown=directory)
    except BaseException:  # a half-written checkpoint must never replace a whole one
        shutil.rmtree(new, ignore_errors=True)
        raise
    swap_in(new, directory)
    return directory


def find_checkpoint(directory, prefer_best=False):
    """The checkpoint folder for `directory`: itself, or a run folder's `checkpoint/` (its `best/` first when
    prefer_best), or one that a crash in the middle of a save left as `.<name>-old`."""
    directory = Path(os.path.abspath(directory))  # so that '.' and '..' have a name to put '.<name>-old' by
    inside = ["best", "checkpoint"] if prefer_best else ["checkpoint"]
    for candidate in [directory] + [directory / name for name in inside]:
        for folder in (candidate, _old(candidate)) if candidate.name else (candidate,):
            if (folder / MANIFEST_FILE).is_file() or (folder / CONFIG_FILE).is_file():
                return folder
    raise CheckpointError(f"no checkpoint in {quoted(directory)}: expected {MANIFEST_FILE} and the files it "
                          f"lists there or in {quoted(directory / 'checkpoint')} (written by `d2lrnn train`)")


MAX_JSON_BYTES = 1 << 20  # config, vocabulary and manifest files are a few KB; a larger one is not ours


def _read_json(folder, name):
    """Parse one JSON file of a checkpoint, naming the file if it is not valid JSON."""
    path = folder / name
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"larger than {MAX_JSON_BYTES:,} bytes")
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"{quoted(path)} is damaged (not valid JSON: {err}); "
                              "train again or use another checkpoint") from None


def verify(folder):
    """Check every file of a checkpoint against its manifest; returns the folder."""
    if not (folder / MANIFEST_FILE).is_file():
        raise CheckpointError(f"{quoted(folder)} has no {MANIFEST_FILE}: it is incomplete or was written by "
                              "an older d2lrnn; train it again")
    manifest = _read_json(folder, MANIFEST_FILE)
    digests = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(digests, dict) or PARAMS_FILE not in digests:
        raise CheckpointError(f"{quoted(folder / MANIFEST_FILE)} is damaged (no SHA-256 list); train again")
    for name, digest in sorted(digests.items()):
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{quoted(folder / MANIFEST_FILE)} is damaged (it lists {name!r}, not a "
                                  "file of the checkpoint); train again")
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{quoted(path)} is missing: the checkpoint is incomplete; train again")
        if file_digest(path, "sha256") != digest:
            raise CheckpointError(f"{quoted(path)} is damaged (its SHA-256 differs from the one in "
                                  f"{MANIFEST_FILE}); train again or use another checkpoint")
    return folder


def _load_arrays(path):
    """nd.load with a one-line error for a file MXNet cannot read."""
    try:
        arrays = nd.load(str(path))
    except MXNetError as err:
        raise CheckpointError(f"{quoted(path)} cannot be read by MXNet ({_reason(err)}); train "
                              "again") from None
    if not isinstance(arrays, dict):
        raise CheckpointError(f"{quoted(path)} holds unnamed arrays, not the named ones d2lrnn saves; train "
                              "again")
    return arrays


def _number(value, low=0.0):
    """True for a finite int or float above `low` (JSON's numbers; booleans are not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low < value < math.inf


def check_config(config, where):
    """The checkpoint's settings as a TrainConfig, after checking every field's type, range and name."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{where} is damaged (not a JSON object of settings); train again")
    fmt = config.get("format", 2)
    if fmt not in (2, FORMAT):
        raise CheckpointError(f"{where}: format {fmt!r} is not one this d2lrnn reads ({FORMAT}, or 2)")
    config = dict(config)
    if fmt == 2 and config.get("model") in ("rnn", "gru", "lstm"):  # format 2's names for the batched cells
        config["model"] += "-bptt"
    for key in ("model", "hidden"):
        if key not in config:
            raise CheckpointError(f"{where}: the field {key!r} is missing; train again")
    try:
        settings = from_dict(config, where)
    except UserError as err:
        raise CheckpointError(str(err)) from None
    for key, valid in (("position", _valid_position), ("held_out", _valid_held_out)):
        if config.get(key) is not None and not valid(config[key]):
            raise CheckpointError(f"{where}: the field {key!r} is not one d2lrnn writes ({config[key]!r}); "
                                  "train again")
    return config, settings


def _whole(value, low, high=BIG):
    """True for an int (not a bool) in [low, high]."""
    return type(value) is int and low <= value <= high


def _valid_position(position):
    """Where a stop left training ({epochs_done, batch}), or which epoch best/ holds ({best_epoch, ...})."""
    if not isinstance(position, dict):
        return False
    if set(position) == {"epochs_done", "batch"}:
        batch = position["batch"]
        return _whole(position["epochs_done"], 0) and (batch is None or _whole(batch, 1))
    return (set(position) == {"best_epoch", "best_val_perplexity"} and _number(position["best_epoch"], -1)
            and _number(position["best_val_perplexity"]))


def _valid_held_out(held_out):
    """The fingerprint of the held-out text best/ was scored on, and its score."""
    return (isinstance(held_out, dict) and set(held_out) == {"sha256", "perplexity"}
            and isinstance(held_out["sha256"], str) and _number(held_out["perplexity"]))


def load_checkpoint(directory, ctx, prefer_best=False):
    """Rebuild the saved model on ctx, after checking every file; returns a Checkpoint."""
    folder = verify(find_checkpoint(directory, prefer_best))
    config, settings = check_config(_read_json(folder, CONFIG_FILE), quoted(folder / CONFIG_FILE))
    idx_to_char = _read_json(folder, VOCAB_FILE)
    tokens_ok = isinstance(idx_to_char, list) and all(isinstance(t, str) and t for t in idx_to_char)
    if not (tokens_ok and idx_to_char and len(set(idx_to_char)) == len(idx_to_char)):
        raise CheckpointError(f"{quoted(folder / VOCAB_FILE)} is damaged (not a list of distinct tokens); "
                              "train again")
    try:
        check_fits(config["model"], vocab_size=len(idx_to_char), num_hiddens=config["hidden"],
                   num_layers=settings.layers, embed_size=settings.embed)
        model = build_from_config(config, vocab_size=len(idx_to_char), ctx=ctx)
    except ValueError as err:
        raise CheckpointError(f"{quoted(folder / CONFIG_FILE)} does not describe a model d2lrnn can build "
                              f"({err})") from None
    saved = _load_arrays(folder / PARAMS_FILE)
    arrays = model.param_arrays()
    names = [f"param{i:02d}" for i in range(len(arrays))]
    if sorted(saved) != names or any(saved[n].shape != a.shape for n, a in zip(names, arrays)):
        raise CheckpointError(f"{quoted(folder / PARAMS_FILE)} does not fit a {config['model']} with "
                              f"{config['hidden']} hidden units and {len(idx_to_char)} tokens; the "
                              "checkpoint is inconsistent")
    bad = non_finite([saved[n] for n in names])
    if bad:
        raise CheckpointError(f"{quoted(folder / PARAMS_FILE)} holds NaN or infinite weights (arrays {bad}): "
                              "that model diverged; use an earlier checkpoint")
    for n, a in zip(names, arrays):
        a[:] = saved[n].as_in_context(ctx)
    try:
        history = History.from_csv(folder / HISTORY_FILE) if (folder / HISTORY_FILE).is_file() else History()
    except (ValueError, KeyError, TypeError, csv.Error) as err:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(f"{quoted(folder / HISTORY_FILE)} is damaged ({type(err).__name__}: {err}); "
                              "train again") from None
    opt = _load_arrays(folder / OPTIMIZER_FILE) if (folder / OPTIMIZER_FILE).is_file() else {}
    char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
    return Checkpoint(model=model, idx_to_char=idx_to_char, char_to_idx=char_to_idx, config=config,
                      settings=settings, history=history, optimizer_arrays=opt, folder=folder)
