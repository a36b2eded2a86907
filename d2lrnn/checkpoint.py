"""Checkpoints: parameters in MXNet's own format, vocabulary and config as JSON (no pickle)."""
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import _compat  # noqa: F401
from mxnet import nd

PARAMS_FILE, VOCAB_FILE, CONFIG_FILE = "params.nd", "vocab.json", "config.json"


def save_checkpoint(directory, params, idx_to_char, config, history=None):
    """Write params, vocab, config (and history.csv) into `directory`, replacing it atomically."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        nd.save(str(tmp / PARAMS_FILE), {f"param{i:02d}": p for i, p in enumerate(params)})
        (tmp / VOCAB_FILE).write_text(json.dumps(list(idx_to_char), ensure_ascii=False))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        if history is not None:
            history.to_csv(tmp / "history.csv")
    except BaseException:  # a half-written checkpoint must never replace a whole one
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = directory.with_name(f".{directory.name}-old")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def find_checkpoint(directory):
    """Return the checkpoint folder: `directory` itself or its `checkpoint/` subfolder."""
    directory = Path(directory)
    for candidate in (directory, directory / "checkpoint"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"no checkpoint in {directory}: expected {CONFIG_FILE}, {VOCAB_FILE} and "
                            f"{PARAMS_FILE} there or in {directory / 'checkpoint'} (written by `d2lrnn train`)")


def load_checkpoint(directory, ctx):
    """Return (params with gradients attached on ctx, idx_to_char, char_to_idx, config)."""
    directory = find_checkpoint(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    idx_to_char = json.loads((directory / VOCAB_FILE).read_text())
    saved = nd.load(str(directory / PARAMS_FILE))
    params = [saved[k].as_in_context(ctx) for k in sorted(saved)]
    for p in params:
        p.attach_grad()
    return params, idx_to_char, {c: i for i, c in enumerate(idx_to_char)}, config
