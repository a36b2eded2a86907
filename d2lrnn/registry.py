"""Every model by name, in one place: the command line, notebooks, homework and tests build from here."""
from dataclasses import dataclass

from mxnet import init
from mxnet.gluon import rnn as grnn

from .fast import FastScratchModel
from .gated import get_gru_params, get_lstm_params, gru, init_gru_state, init_lstm_state, lstm
from .model import FusedLayer, LayerStack, RNNModel, get_params, init_rnn_state, rnn


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: a cell from scratch (with the lecture's readable functions) or a fused Gluon layer."""

    name: str
    summary: str
    cell: str                # rnn, gru or lstm
    functions: tuple = None  # the lecture's (step function, get_params, init_state) for a scratch model
    layer: type = None       # the gluon.rnn layer class for a fused model


MODELS = {spec.name: spec for spec in [
    ModelSpec("rnn", "tanh RNN from scratch (the lecture's rnn)", "rnn", functions=(rnn, get_params, init_rnn_state)),
    ModelSpec("gru", "GRU from scratch (the lecture's gru)", "gru", functions=(gru, get_gru_params, init_gru_state)),
    ModelSpec("lstm", "LSTM from scratch (the lecture's lstm)", "lstm",
              functions=(lstm, get_lstm_params, init_lstm_state)),
    ModelSpec("gluon-rnn", "MXNet's fused tanh RNN (what gluon.rnn.RNN runs)", "rnn", layer=grnn.RNN),
    ModelSpec("gluon-gru", "MXNet's fused GRU (what gluon.rnn.GRU runs)", "gru", layer=grnn.GRU),
    ModelSpec("gluon-lstm", "MXNet's fused LSTM (what gluon.rnn.LSTM runs)", "lstm", layer=grnn.LSTM),
]}


def model_spec(name):
    """The registry entry for `name`; a ValueError lists the names there are."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def scratch_functions(name):
    """(step function, get_params, init_state) of a from-scratch model, e.g. (gru, get_gru_params, init_gru_state)."""
    spec = model_spec(name)
    if spec.functions is None:
        raise ValueError(f"{name!r} is a fused Gluon model: it has no from-scratch functions")
    return spec.functions


def _check_options(num_hiddens, num_layers, embed_size, dropout):
    """Sizes are whole numbers in range, dropout a probability below 1."""
    for label, value, low in (("num_hiddens", num_hiddens, 1), ("num_layers", num_layers, 1),
                              ("embed_size", embed_size, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"{label} must be a whole number >= {low}, got {value!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def build_model(name, *, vocab_size, num_hiddens, ctx, num_layers=1, embed_size=0, dropout=0.0):
    """A fresh model from the registry, its weights drawn from N(0, 0.01) on ctx."""
    spec = model_spec(name)
    _check_options(num_hiddens, num_layers, embed_size, dropout)
    if spec.functions is not None:
        return FastScratchModel(spec.cell, vocab_size=vocab_size, num_hiddens=num_hiddens, ctx=ctx,
                                num_layers=num_layers, embed_size=embed_size, dropout=dropout, name=name)
    inputs = embed_size or vocab_size
    if dropout:  # one fused layer per layer, dropout between (see LayerStack)
        layer = LayerStack([FusedLayer(spec.cell, num_hiddens, inputs if k == 0 else num_hiddens)
                            for k in range(num_layers)], dropout)
    else:
        layer = FusedLayer(spec.cell, num_hiddens, inputs, num_layers)
    model = RNNModel(layer, vocab_size, embed_size)
    model.initialize(init.Normal(0.01), ctx=ctx)
    model.config = {"model": name, "hidden": num_hiddens, "layers": num_layers, "embed": embed_size,
                    "dropout": dropout}
    model.param_arrays()  # settle Gluon's deferred shapes now
    return model


def build_from_config(config, *, vocab_size, ctx):
    """Rebuild a model from the config it saved (model.config)."""
    return build_model(config["model"], vocab_size=vocab_size, num_hiddens=config["hidden"], ctx=ctx,
                       num_layers=config.get("layers", 1), embed_size=config.get("embed", 0),
                       dropout=config.get("dropout", 0.0))
