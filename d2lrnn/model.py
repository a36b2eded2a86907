"""Model: the one interface every model shares, the lecture's functions as a model, and the Gluon models.

Every model is called as `model(X, state)` on a (batch, steps) array of token indices and returns
`(logits, state)` with logits of shape (steps * batch, vocab), time-major; it makes its first state
with `model.begin_state(batch_size=..., ctx=...)`, lists its trainable arrays with
`model.param_arrays()`, and `model.config` says how the registry rebuilds it.
"""
import inspect

from mxnet import gluon, init, nd
from mxnet.gluon import nn

from .cells.ops import INIT_SCALE
from .data import to_onehot


def call_get_params(get_params, vocab_size, num_hiddens, ctx):
    """Call the lecture's zero-argument get_params closure, or get_params(vocab, hidden, ctx)."""
    try:
        inspect.signature(get_params).bind(vocab_size, num_hiddens, ctx)
    except TypeError:
        return get_params()
    return get_params(vocab_size, num_hiddens, ctx)


class ArrayModel:
    """What the from-scratch models share: their weights are a plain list of arrays, `self.params`."""

    num_layers, embed_size, dropout = 1, 0, 0.0  # the lecture's: one layer, one-hot input, no dropout

    def param_arrays(self):
        """The trainable arrays, each with its .grad."""
        return list(self.params)

    @property
    def config(self):
        """What the registry needs to rebuild this model (None for a student's own functions)."""
        if self.name is None:
            return None
        return {"model": self.name, "hidden": self.num_hiddens, "layers": self.num_layers,
                "embed": self.embed_size, "dropout": self.dropout}


class ScratchModel(ArrayModel):
    """The lecture's functional triple (get_params, init_state, rnn) as one model object."""

    def __init__(self, rnn, get_params, init_state, *, vocab_size, num_hiddens, ctx, params=None,
                 name=None):
        self.rnn, self.init_state = rnn, init_state
        self.vocab_size, self.num_hiddens, self.name = vocab_size, num_hiddens, name
        self.params = call_get_params(get_params, vocab_size, num_hiddens, ctx) if params is None else params

    def __call__(self, X, state):
        """X (batch, steps) token indices -> logits (steps * batch, vocab), new state."""
        outputs, state = self.rnn(to_onehot(X, self.vocab_size), state, self.params)  # steps x (batch, vocab)
        return nd.concat(*outputs, dim=0), tuple(state)

    def begin_state(self, batch_size, ctx):
        """The zero state for a batch, on ctx."""
        return tuple(self.init_state(batch_size, self.num_hiddens, ctx))


class RNNModel(nn.Block):
    """One-hot (or embedded) inputs -> a Gluon recurrent layer -> a dense layer over the vocabulary."""

    def __init__(self, rnn_layer, vocab_size, embed_size=0, **kwargs):
        super().__init__(**kwargs)
        self.rnn = rnn_layer
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embed_size) if embed_size else None
        self.dense = nn.Dense(vocab_size)
        self.config = None  # set by the registry: what rebuilds this model

    def forward(self, inputs, state):
        """inputs (batch, steps) -> logits (steps * batch, vocab), new state."""
        if self.embedding is None:
            X = nd.one_hot(inputs.T, self.vocab_size)  # (steps, batch, vocab)
        else:
            X = self.embedding(inputs.T)               # (steps, batch, embed)
        Y, state = self.rnn(X, state)                  # Y: (steps, batch, hidden)
        output = self.dense(Y.reshape((-1, Y.shape[-1])))  # (steps * batch, vocab)
        return output, state

    def begin_state(self, *args, **kwargs):
        """Initial state of the recurrent layer (a list of arrays)."""
        return self.rnn.begin_state(*args, **kwargs)

    def param_arrays(self):
        """The trainable arrays (one tiny forward pass first settles the shapes Gluon infers late)."""
        params = list(self.collect_params().values())
        try:
            return [p.data() for p in params]
        except gluon.parameter.DeferredInitializationError:
            ctx = params[0].list_ctx()[0]
            self(nd.zeros((1, 1), ctx=ctx), self.begin_state(batch_size=1, ctx=ctx))
            return [p.data() for p in params]


class FusedLayer(nn.Block):
    """MXNet's fused RNN operator (what gluon.rnn.RNN/GRU/LSTM call) on ONE flat parameter vector.

    Gluon's layers keep each weight matrix as its own Parameter and concatenate them all into the
    operator's flat vector on every call, forward and backward: about a sixth of an LSTM minibatch
    on a CPU. Here the flat vector is the parameter. Its layout is the operator's: every layer's
    i2h then h2h weights, (gates * hidden, inputs) and (gates * hidden, hidden), then every layer's
    i2h and h2h biases; copy_from() loads a gluon.rnn layer's weights into it (tests compare the two).
    """

    MODES = {"rnn": ("rnn_tanh", 1), "gru": ("gru", 3), "lstm": ("lstm", 4)}

    def __init__(self, cell, num_hiddens, input_size, num_layers=1, **kwargs):
        super().__init__(**kwargs)
        self.mode, gates = self.MODES[cell]
        self.cell, self.num_hiddens, self.num_layers = cell, num_hiddens, num_layers
        self.shapes = [(gates * num_hiddens, n_in) for layer in range(num_layers)
                       for n_in in (input_size if layer == 0 else num_hiddens, num_hiddens)]  # i2h, h2h
        self.num_weights = sum(r * c for r, c in self.shapes)
        size = self.num_weights + 2 * num_layers * gates * num_hiddens
        self.flat = self.params.get("flat", shape=(size,), init=_WeightsThenZeros(self.num_weights))

    def forward(self, X, state):
        """X (steps, batch, inputs) -> (Y (steps, batch, hidden), new state as a list like Gluon's)."""
        out = nd.RNN(X, self.flat.data(X.context), *state, mode=self.mode, state_size=self.num_hiddens,
                     num_layers=self.num_layers, state_outputs=True)
        return out[0], list(out[1:])

    def copy_from(self, layer):
        """Take the weights of a gluon.rnn layer of the same kind and size (in the operator's order)."""
        order = [f"l{k}_{g}_{t}" for t in ("weight", "bias")
                 for k in range(self.num_layers) for g in ("i2h", "h2h")]
        self.flat.set_data(nd.concat(*[getattr(layer, name).data().reshape(-1) for name in order], dim=0))

    def begin_state(self, batch_size=0, ctx=None, **kwargs):
        """Zeros of (layers, batch, hidden): [h], or [h, c] for an LSTM."""
        shape = (self.num_layers, batch_size, self.num_hiddens)
        return [nd.zeros(shape, ctx=ctx) for _ in range(2 if self.cell == "lstm" else 1)]

    def state_info(self, batch_size=0):
        """One entry per state array (what LayerStack counts)."""
        shape = (self.num_layers, batch_size, self.num_hiddens)
        return [{"shape": shape}] * (2 if self.cell == "lstm" else 1)


class _WeightsThenZeros(init.Initializer):
    """N(0, INIT_SCALE) for the first `count` entries (the weights), zeros for the rest (the biases)."""

    def __init__(self, count):
        super().__init__()
        self.count = count

    def _init_weight(self, name, arr):
        arr[:] = nd.concat(nd.random.normal(scale=INIT_SCALE, shape=(self.count,), ctx=arr.context),
                           nd.zeros(arr.shape[0] - self.count, ctx=arr.context), dim=0)


class LayerStack(nn.Block):
    """Single-layer Gluon recurrent layers one above another, with dropout between them.

    Gluon's own num_layers=2 with dropout=p would do the same on paper, but MXNet 1.9.1's oneDNN
    kernel, which runs the fused layers on a CPU, silently ignores p (tests/test_model.py shows it).
    The state is the layers' states one after another: (h_1, h_2, ...), or (h_1, c_1, h_2, c_2, ...).
    """

    def __init__(self, layers, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.layers = nn.Sequential()
        for layer in layers:
            self.layers.add(layer)
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, X, state):
        """X (steps, batch, features) -> (Y (steps, batch, hidden), new state)."""
        new_state, i = [], 0
        for k, layer in enumerate(self.layers):
            n = len(layer.state_info())
            X, layer_state = layer(X, list(state[i:i + n]))
            new_state += layer_state
            i += n
            if self.dropout is not None and k < len(self.layers) - 1:
                X = self.dropout(X)
        return X, new_state

    def begin_state(self, *args, **kwargs):
        """Every layer's initial state, one after another."""
        return [s for layer in self.layers for s in layer.begin_state(*args, **kwargs)]
