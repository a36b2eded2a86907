"""Every model by name, in one place: the command line, notebooks, homework and tests build from here.

Each cell comes three ways, and the name says which one runs:

* `rnn`, `gru`, `lstm`: the lecture's step function (d2lrnn.cells) trained with autograd;
* `rnn-bptt`, `gru-bptt`, `lstm-bptt`: the same cell batched, with the backward pass written by hand
  (d2lrnn.cells.batched); also in layers, with an embedding and dropout;
* `gluon-rnn`, `gluon-gru`, `gluon-lstm`: MXNet's fused layer (what gluon.rnn.RNN/GRU/LSTM run).
"""
from dataclasses import dataclass

from mxnet import init

from .cells import CELLS
from .cells.batched import BatchedModel
from .cells.ops import INIT_SCALE
from .model import FusedLayer, LayerStack, RNNModel, ScratchModel

MAX_ELEMENTS = 2 ** 31 - 1  # MXNet 1.9.1 indexes a tensor with 32-bit integers


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: which cell, and which implementation of it."""

    name: str
    cell: str  # rnn, gru or lstm
    kind: str  # "lecture" (step function, autograd), "bptt" (batched, backward by hand) or "gluon" (fused)

    @property
    def summary(self):
        """One line for --help and tables."""
        cell = {"rnn": "tanh RNN", "gru": "GRU", "lstm": "LSTM"}[self.cell]
        return {"lecture": f"the lecture's {cell} step function, trained with autograd",
                "bptt": f"{cell} cell batched, backward through time by hand (layers, embedding, dropout)",
                "gluon": f"MXNet's fused {cell} layer (what gluon.rnn.{self.cell.upper()} runs)"}[self.kind]


KINDS = (("{}", "lecture"), ("{}-bptt", "bptt"), ("gluon-{}", "gluon"))  # name pattern, implementation
MODELS = {spec.name: spec for spec in (ModelSpec(pattern.format(cell), cell, kind) for pattern, kind in KINDS
                                       for cell in ("rnn", "gru", "lstm"))}


def model_spec(name):
    """The registry entry for `name`; a ValueError lists the names there are."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def scratch_functions(name):
    """(step function, get_params, init_state) of a cell, e.g. scratch_functions("gru") -> (gru, ...)."""
    spec = model_spec(name)
    if spec.kind == "gluon":
        raise ValueError(f"{name!r} is a fused Gluon model: it has no from-scratch functions")
    cell = CELLS[spec.cell]
    return cell.step, cell.get_params, cell.init_state


def _check_options(spec, num_hiddens, num_layers, embed_size, dropout):
    """Sizes are whole numbers in range, dropout a probability below 1; the lecture's cells have one layer."""
    for label, value, low in (("num_hiddens", num_hiddens, 1), ("num_layers", num_layers, 1),
                              ("embed_size", embed_size, 0)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{label} must be a whole number >= {low}, got {value!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if spec.kind == "lecture" and (num_layers != 1 or embed_size or dropout):
        raise ValueError(f"{spec.name!r} is the lecture's cell: one layer, one-hot input, no dropout; "
                         f"use {spec.name}-bptt or gluon-{spec.name} for layers, an embedding or dropout")


def tensor_sizes(name, *, vocab_size, num_hiddens, num_layers=1, embed_size=0, batch_size=1, num_steps=1):
    """{what: elements} of the largest tensors a model and one minibatch of it need (no allocation)."""
    spec = model_spec(name)
    gates, n, rows = CELLS[spec.cell].gates, num_hiddens, batch_size * num_steps
    inputs = embed_size or vocab_size
    sizes = {"output layer (hidden x vocabulary)": n * vocab_size,
             "logits (steps * batch x vocabulary)": rows * vocab_size,
             "gate activations (steps * batch x gates * hidden)": rows * gates * n,
             "first layer's input weights": inputs * gates * n}
    if embed_size:
        sizes["embedding (vocabulary x embed)"] = vocab_size * embed_size
    if spec.kind == "gluon":  # one flat vector holds every layer's weights and biases
        per_layer = [gates * n * ((inputs if k == 0 else n) + n + 2) for k in range(num_layers)]
        sizes["fused layer's flat weights"] = sum(per_layer)
    return sizes


def _available_bytes():
    """Memory the machine can still give (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_fits(name, *, vocab_size, num_hiddens, num_layers=1, embed_size=0, batch_size=1, num_steps=1):
    """Refuse, before anything is allocated, a model or minibatch too big for MXNet or this machine."""
    sizes = tensor_sizes(name, vocab_size=vocab_size, num_hiddens=num_hiddens, num_layers=num_layers,
                         embed_size=embed_size, batch_size=batch_size, num_steps=num_steps)
    what, biggest = max(sizes.items(), key=lambda item: item[1])
    if biggest > MAX_ELEMENTS:
        raise ValueError(f"the {what} would hold {biggest:,} numbers; MXNet's limit is {MAX_ELEMENTS:,} per "
                         "tensor: use fewer hidden units, a smaller embedding, batch or window")
    gates = CELLS[model_spec(name).cell].gates
    inputs = [embed_size or vocab_size] + [num_hiddens] * (num_layers - 1)
    params = sum(gates * num_hiddens * (n_in + num_hiddens + 1) for n_in in inputs) + num_hiddens * vocab_size
    # weights, gradients, two optimiser moments; activations kept for the backward pass, roughly 4x the gates
    need = 4 * (4 * params + 4 * num_layers * sizes["gate activations (steps * batch x gates * hidden)"]
                + 3 * sizes["logits (steps * batch x vocabulary)"])
    have = _available_bytes()
    if have is not None and need > have:
        raise ValueError(f"this model and minibatch need about {need / 2**30:,.1f} GiB of memory; the "
                         f"machine has {have / 2**30:,.1f} GiB available: use fewer hidden units, layers or "
                         "a smaller batch")


def build_model(name, *, vocab_size, num_hiddens, ctx, num_layers=1, embed_size=0, dropout=0.0):
    """A fresh model from the registry, its weights drawn from N(0, 0.01) on ctx."""
    spec = model_spec(name)
    _check_options(spec, num_hiddens, num_layers, embed_size, dropout)
    if spec.kind == "lecture":
        step, get_params, init_state = scratch_functions(name)
        return ScratchModel(step, get_params, init_state, vocab_size=vocab_size, num_hiddens=num_hiddens,
                            ctx=ctx, name=name)
    if spec.kind == "bptt":
        return BatchedModel(spec.cell, vocab_size=vocab_size, num_hiddens=num_hiddens, ctx=ctx,
                            num_layers=num_layers, embed_size=embed_size, dropout=dropout, name=name)
    inputs = embed_size or vocab_size
    if dropout:  # one fused layer per layer, dropout between (see LayerStack)
        layer = LayerStack([FusedLayer(spec.cell, num_hiddens, inputs if k == 0 else num_hiddens)
                            for k in range(num_layers)], dropout)
    else:
        layer = FusedLayer(spec.cell, num_hiddens, inputs, num_layers)
    model = RNNModel(layer, vocab_size, embed_size)
    model.initialize(init.Normal(INIT_SCALE), ctx=ctx)
    model.config = {"model": name, "hidden": num_hiddens, "layers": num_layers, "embed": embed_size,
                    "dropout": dropout}
    model.param_arrays()  # settle Gluon's deferred shapes now
    return model


def build_from_config(config, *, vocab_size, ctx):
    """Rebuild a model from the config it saved (model.config)."""
    return build_model(config["model"], vocab_size=vocab_size, num_hiddens=config["hidden"], ctx=ctx,
                       num_layers=config.get("layers", 1), embed_size=config.get("embed", 0),
                       dropout=config.get("dropout", 0.0))

