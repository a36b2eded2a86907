"""The main job's settings: one small object, its defaults (the lecture's), and the bounds every value meets.

The same checks run on the command line's arguments and on a checkpoint's config.json, so a value that
could not have come from the command line cannot come from a file either.
"""
import math
import re
from dataclasses import asdict, dataclass, field, fields

from .data import CORPORA, PREPROCESS, TextSource
from .optim import OPTIMIZERS
from .registry import MODELS
from .utils import UserError

FLOAT32_MAX = float.fromhex("0x1.fffffep+127")  # the largest float32
FLOAT32_MIN = float.fromhex("0x1p-126")         # the smallest normal float32: below it MXNet loses the value
MAX_SEED = 2 ** 32 - 1                          # NumPy's seeds are 32-bit
BIG = 2 ** 31 - 1                               # counts of tokens, minibatches, epochs


@dataclass
class TrainConfig:
    """Hyperparameters of the main job; the defaults are the lecture's."""

    LECTURE_EPOCHS = 500      # what `epochs=None` means without `minutes`

    epochs: int = None        # None: LECTURE_EPOCHS, or until `minutes` or `train_chars` runs out
    minutes: float = None     # a wall-clock budget instead of (or as well as) a number of epochs
    train_chars: int = None   # a budget of training tokens seen (over all epochs): the same on any machine
    hidden: int = 512
    layers: int = 1
    embed: int = 0            # 0: one-hot input, as in the lecture
    dropout: float = 0.0
    steps: int = 35
    batch_size: int = 32
    lr: float = 100.0
    lr_schedule: str = "constant"  # or "cosine": decay to a tenth over the run, after `warmup` minibatches
    warmup: int = 0           # minibatches over which the learning rate rises linearly to `lr`
    clip: float = 0.01
    optimizer: str = "sgd"
    sampling: str = "sequential"
    model: str = "rnn"
    token: str = "char"
    ctx: str = "auto"
    corpus: str = "timemachine"
    text: str = None          # a file of your own instead of a built-in corpus
    preprocess: str = None    # None: the corpus's own (lecture: The Time Machine, --text; raw: Shakespeare)
    num_chars: int = None     # None: the lecture's 10,000 of The Time Machine, else all but the held-out text
    val_chars: int = 0
    val_fraction: float = 0.0
    prefix: list = field(default=None)
    pred_period: int = 50
    pred_len: int = 50
    eval_every: int = 0       # minibatches between held-out evaluations within an epoch (0: at epoch ends)
    save_every: float = 5.0   # minutes between checkpoints during training
    seed: int = 0
    threads: str = "auto"     # OpenMP threads for MXNet, chosen before it loads (see d2lrnn/__main__.py)
    out: str = "runs/lecture"
    resume: str = None
    overwrite: bool = False

    def num_epochs(self):
        """Epochs to train: None means until `minutes` or `train_chars` runs out."""
        if self.epochs is not None:
            return self.epochs
        return None if self.minutes or self.train_chars else self.LECTURE_EPOCHS

    def source(self):
        """The text this configuration trains on."""
        return TextSource(corpus=self.corpus, text=self.text, preprocess=self.preprocess, token=self.token,
                          num_chars=self.num_chars, val_chars=self.val_chars, val_fraction=self.val_fraction)


MODEL_KEYS = ("model", "hidden", "layers", "embed", "token", "optimizer")  # what a resumed run must share

# field -> (allowed types, low, high) for numbers, or the allowed values for names
WHOLE = {"hidden": (1, 1_000_000), "layers": (1, 64), "embed": (0, 1_000_000), "steps": (1, 100_000),
         "batch_size": (1, 1_000_000), "pred_period": (1, BIG), "pred_len": (0, 100_000), "epochs": (1, BIG),
         "num_chars": (1, BIG), "val_chars": (0, BIG), "eval_every": (0, BIG), "seed": (0, MAX_SEED),
         "train_chars": (1, 2 ** 53), "warmup": (0, BIG)}
CHOICES = {"model": tuple(MODELS), "optimizer": tuple(OPTIMIZERS), "sampling": ("sequential", "random"),
           "token": ("char", "word"), "ctx": ("auto", "cpu", "gpu"), "corpus": tuple(CORPORA),
           "preprocess": tuple(PREPROCESS), "lr_schedule": ("constant", "cosine")}
NONE_ALLOWED = {"epochs", "minutes", "text", "preprocess", "num_chars", "prefix", "resume", "train_chars"}
MAX_MINUTES = 10_000_000  # 19 years
MAX_PREFIXES, MAX_PREFIX_CHARS = 16, 4096  # samples while training; they are saved in config.json
MACHINE_SETTINGS = ("threads",)  # describe the machine that trained, not the model: not read back from files


def flag(name):
    """'batch_size' -> '--batch-size'."""
    return "--" + name.replace("_", "-")


def max_threads():
    """The most OpenMP threads a run may ask for: four per CPU this process may use."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 4 * cpus


def validate(cfg, label=flag):
    """Reject settings that cannot train, before any work is done; label(name) names a setting in messages."""
    def bad(name, what):
        raise UserError(f"{label(name)} must be {what}, got {getattr(cfg, name)!r}")

    for name, (low, high) in WHOLE.items():
        value = getattr(cfg, name)
        if value is not None and not low <= value <= high:
            bad(name, f"a whole number from {low:,} to {high:,}")
    if not FLOAT32_MIN <= cfg.lr <= FLOAT32_MAX:
        bad("lr", f"a positive number MXNet can hold (from {FLOAT32_MIN:.3g} to {FLOAT32_MAX:.3g}, float32)")
    if not (FLOAT32_MIN <= cfg.clip <= FLOAT32_MAX or cfg.clip == math.inf):
        bad("clip", f"a positive float32 number (at most {FLOAT32_MAX:.3g}), or inf to turn clipping off")
    if not (cfg.threads == "auto" or (re.fullmatch("[0-9]{1,6}", cfg.threads)
                                      and 1 <= int(cfg.threads) <= max_threads())):
        bad("threads", f"auto or a whole number from 1 to {max_threads()} (4 per CPU)")
    for name in ("minutes", "save_every"):
        value = getattr(cfg, name)
        if value is not None and not 0 < value <= MAX_MINUTES:
            bad(name, f"a positive number of minutes (at most {MAX_MINUTES:,})")
    if not 0 <= cfg.dropout < 1:
        bad("dropout", "at least 0 and below 1")
    prefix_chars = sum(map(len, cfg.prefix or []))
    if cfg.prefix is not None and (len(cfg.prefix) > MAX_PREFIXES or prefix_chars > MAX_PREFIX_CHARS):
        raise UserError(f"{label('prefix')}: at most {MAX_PREFIXES} prefixes of {MAX_PREFIX_CHARS:,} "
                        f"characters in all (got {len(cfg.prefix)}, {prefix_chars:,} characters)")
    if not 0 <= cfg.val_fraction < 1:
        bad("val_fraction", "at least 0 and below 1")
    if cfg.val_chars and cfg.val_fraction:
        raise UserError(f"give {label('val_chars')} or {label('val_fraction')}, not both")
    if cfg.lr_schedule == "cosine" and cfg.num_epochs() is None and not cfg.train_chars:
        raise UserError(f"{label('lr_schedule')} cosine decays over the whole run: give {label('epochs')} or "
                        f"{label('train_chars')} so that its length is known")
    if cfg.dropout and cfg.layers == 1:
        raise UserError(f"{label('dropout')} acts between layers: give {label('layers')} 2 or more, or leave "
                        "it out")
    for name, allowed in CHOICES.items():
        value = getattr(cfg, name)
        if value not in allowed and not (value is None and name in NONE_ALLOWED):
            bad(name, "one of " + ", ".join(allowed))
    if MODELS[cfg.model].kind == "lecture" and (cfg.layers != 1 or cfg.embed):
        raise UserError(f"{label('model')} {cfg.model} is the lecture's cell: one layer and one-hot input; "
                        f"use {cfg.model}-bptt or gluon-{cfg.model} for {label('layers')} or "
                        f"{label('embed')}")
    return cfg


def _type_ok(name, value, default):
    """True when a value read from a file has the type the setting needs."""
    if value is None:
        return name in NONE_ALLOWED
    if isinstance(default, bool):
        return isinstance(value, bool)
    if name in WHOLE or isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float) or name == "minutes":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if name == "prefix":
        return isinstance(value, list) and all(isinstance(p, str) and p for p in value)
    return isinstance(value, str)


def from_dict(values, where):
    """A TrainConfig from saved settings (unknown keys are left out); one UserError names a wrong field."""
    defaults = asdict(TrainConfig())
    known = {k: v for k, v in values.items() if k in defaults and k not in MACHINE_SETTINGS}
    for name, value in known.items():
        if not _type_ok(name, value, defaults[name]):
            raise UserError(f"{where}: the field {name!r} has the wrong type ({value!r}); train again or "
                            "restore the file")
    return validate(TrainConfig(**{**defaults, **known}), label=lambda name: f"{where}: the field {name!r}")


def config_fields():
    """The names of TrainConfig's settings."""
    return [f.name for f in fields(TrainConfig)]
