"""Checkpoints: a model's weights in MXNet's format, its vocabulary, config and history as text, checked on load.

A checkpoint is a folder holding params.nd, vocab.json, config.json, history.csv, optimizer.nd (when
the optimiser has state) and manifest.json, the SHA-256 of every other file. A save writes a new
folder beside the old one and swaps the two with renames, so a crash at any moment leaves a whole
checkpoint behind (in the folder, or as `.<name>-old` until the next save restores it). Loading checks
every file against the manifest and refuses non-finite weights, with one line naming what is wrong.
"""
import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mxnet import nd
from mxnet.base import MXNetError

from .registry import build_from_config
from .training import History
from .utils import UserError, file_digest

PARAMS_FILE, VOCAB_FILE, CONFIG_FILE, HISTORY_FILE = "params.nd", "vocab.json", "config.json", "history.csv"
OPTIMIZER_FILE, MANIFEST_FILE = "optimizer.nd", "manifest.json"
FORMAT = 2  # bump when the layout changes; 1 was the unverified layout without a manifest


PRETRAINED = Path(__file__).resolve().parent / "pretrained"
# shakespeare-lstm (1.4 MB): the fused LSTM of the README's Tiny Shakespeare results, made by
#   python -m d2lrnn train --corpus tinyshakespeare --model gluon-lstm --hidden 256 --optimizer adam --lr 0.002 \
#       --clip 1 --val-fraction 0.1 --epochs 20 --steps 64 --batch-size 64 --out runs/shakespeare
# (its best/ folder; held-out perplexity 5.004, 1.610 nats per character, after 20 epochs / 9.9 minutes here)


def pretrained(name="shakespeare-lstm"):
    """The folder of a checkpoint shipped with d2lrnn (load it with load_checkpoint)."""
    folder = PRETRAINED / name
    if not folder.is_dir():
        names = ", ".join(sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir())) if PRETRAINED.is_dir() else ""
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
    config: dict
    history: History
    optimizer_arrays: dict
    folder: Path


def _fsync(path):
    """Flush a file or folder to disk, so a power cut cannot undo a rename that followed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def non_finite(arrays):
    """Indices of the arrays that hold a NaN or an infinity."""
    return [i for i, a in enumerate(arrays) if not np.isfinite(a.asnumpy()).all()]


def _old(directory):
    """Where the previous checkpoint waits while a save swaps folders."""
    return directory.with_name(f".{directory.name}-old")


def _clean_leftovers(directory):
    """Undo what a save killed half-way left behind: stale new folders, a displaced old checkpoint."""
    for stale in directory.parent.glob(f".{directory.name}-new-*"):
        shutil.rmtree(stale, ignore_errors=True)
    old = _old(directory)
    if old.exists():
        if directory.exists():  # the swap finished; only the clean-up was cut short
            shutil.rmtree(old, ignore_errors=True)
        else:                   # cut between the two renames: put the old checkpoint back
            os.replace(old, directory)


def save_checkpoint(directory, model, idx_to_char, *, config=None, history=None, optimizer=None):
    """Save a registry model into `directory`, replacing its checkpoint only once the new one is whole."""
    directory = Path(directory)
    if model.config is None:
        raise ValueError("only models built by the registry can be saved (d2lrnn.build_model): a checkpoint "
                         "records the model's name so that it can be rebuilt")
    arrays = model.param_arrays()
    bad = non_finite(arrays)
    if bad:
        raise ValueError(f"refusing to save non-finite weights (arrays {bad} hold NaN or inf): the model "
                         "has diverged; the previous checkpoint is kept")
    directory.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(directory)
    new = directory.with_name(f".{directory.name}-new-{os.getpid()}")
    new.mkdir()
    try:
        nd.save(str(new / PARAMS_FILE), {f"param{i:02d}": a for i, a in enumerate(arrays)})
        opt_arrays = optimizer.state_arrays() if optimizer is not None else {}
        if opt_arrays:
            nd.save(str(new / OPTIMIZER_FILE), opt_arrays)
        (new / VOCAB_FILE).write_text(json.dumps(list(idx_to_char), ensure_ascii=False), encoding="utf-8")
        full_config = {**(config or {}), **model.config, "format": FORMAT}
        (new / CONFIG_FILE).write_text(json.dumps(full_config, indent=2, sort_keys=True), encoding="utf-8")
        (history if history is not None else History()).to_csv(new / HISTORY_FILE)
        files = sorted(p.name for p in new.iterdir())
        manifest = {"format": FORMAT, "sha256": {name: file_digest(new / name, "sha256") for name in files}}
        (new / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        for name in files + [MANIFEST_FILE]:
            _fsync(new / name)
    except BaseException:  # a half-written checkpoint must never replace a whole one
        shutil.rmtree(new, ignore_errors=True)
        raise
    if directory.exists():
        os.replace(directory, _old(directory))
    os.replace(new, directory)
    _fsync(directory.parent)
    shutil.rmtree(_old(directory), ignore_errors=True)
    return directory


def find_checkpoint(directory, prefer_best=False):
    """The checkpoint folder for `directory`: itself, or a run folder's `checkpoint/` (its `best/` first when
    prefer_best), or one that a crash in the middle of a save left as `.<name>-old`."""
    directory = Path(directory)
    inside = ["best", "checkpoint"] if prefer_best else ["checkpoint"]
    for candidate in [directory] + [directory / name for name in inside]:
        for folder in (candidate, _old(candidate)):
            if (folder / MANIFEST_FILE).is_file() or (folder / CONFIG_FILE).is_file():
                return folder
    raise CheckpointError(f"no checkpoint in {directory}: expected {MANIFEST_FILE} and the files it lists "
                          f"there or in {directory / 'checkpoint'} (written by `d2lrnn train`)")


def _read_json(folder, name):
    """Parse one JSON file of a checkpoint, naming the file if it is not valid JSON."""
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{folder / name} is damaged (not valid JSON: {err}); "
                              "train again or use another checkpoint") from None


def verify(folder):
    """Check every file of a checkpoint against its manifest; returns the folder."""
    if not (folder / MANIFEST_FILE).is_file():
        raise CheckpointError(f"{folder} has no {MANIFEST_FILE}: it is incomplete or was written by an older "
                              "d2lrnn; train it again")
    manifest = _read_json(folder, MANIFEST_FILE)
    digests = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(digests, dict) or PARAMS_FILE not in digests:
        raise CheckpointError(f"{folder / MANIFEST_FILE} is damaged (no SHA-256 list); train again")
    for name, digest in sorted(digests.items()):
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{folder / MANIFEST_FILE} is damaged (it lists {name!r}, not a file of the "
                                  "checkpoint); train again")
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: the checkpoint is incomplete; train again")
        if file_digest(path, "sha256") != digest:
            raise CheckpointError(f"{path} is damaged (its SHA-256 differs from the one in {MANIFEST_FILE}); "
                                  "train again or use another checkpoint")
    return folder


def _load_arrays(path):
    """nd.load with a one-line error for a file MXNet cannot read."""
    try:
        return nd.load(str(path))
    except MXNetError as err:  # MXNet's text starts with its own "Traceback" lines: keep only the reason
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = next((line[len("MXNetError:"):].strip() for line in reversed(lines) if line.startswith("MXNetError:")),
                      lines[-1] if lines else type(err).__name__)
        raise CheckpointError(f"{path} cannot be read by MXNet ({reason}); train again") from None


def load_checkpoint(directory, ctx, prefer_best=False):
    """Rebuild the saved model on ctx, after checking every file; returns a Checkpoint."""
    folder = verify(find_checkpoint(directory, prefer_best))
    config, idx_to_char = _read_json(folder, CONFIG_FILE), _read_json(folder, VOCAB_FILE)
    if not isinstance(config, dict):
        raise CheckpointError(f"{folder / CONFIG_FILE} is damaged (not a JSON object of settings); train again")
    if not (isinstance(idx_to_char, list) and idx_to_char and all(isinstance(t, str) and t for t in idx_to_char)
            and len(set(idx_to_char)) == len(idx_to_char)):
        raise CheckpointError(f"{folder / VOCAB_FILE} is damaged (not a list of distinct tokens); train again")
    try:
        model = build_from_config(config, vocab_size=len(idx_to_char), ctx=ctx)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / CONFIG_FILE} does not describe a model d2lrnn can build ({err})") from None
    saved = _load_arrays(folder / PARAMS_FILE)
    arrays = model.param_arrays()
    names = [f"param{i:02d}" for i in range(len(arrays))]
    if sorted(saved) != names or any(saved[n].shape != a.shape for n, a in zip(names, arrays)):
        raise CheckpointError(f"{folder / PARAMS_FILE} does not fit a {config['model']} with {config['hidden']} "
                              f"hidden units and {len(idx_to_char)} tokens; the checkpoint is inconsistent")
    bad = non_finite([saved[n] for n in names])
    if bad:
        raise CheckpointError(f"{folder / PARAMS_FILE} holds NaN or infinite weights (arrays {bad}): that model "
                              "diverged; use an earlier checkpoint")
    for n, a in zip(names, arrays):
        a[:] = saved[n].as_in_context(ctx)
    try:
        history = History.from_csv(folder / HISTORY_FILE) if (folder / HISTORY_FILE).is_file() else History()
    except (ValueError, KeyError, TypeError, csv.Error) as err:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(f"{folder / HISTORY_FILE} is damaged ({type(err).__name__}: {err}); train again") \
            from None
    opt = _load_arrays(folder / OPTIMIZER_FILE) if (folder / OPTIMIZER_FILE).is_file() else {}
    return Checkpoint(model=model, idx_to_char=idx_to_char, char_to_idx={c: i for i, c in enumerate(idx_to_char)},
                      config=config, history=history, optimizer_arrays=opt, folder=folder)
