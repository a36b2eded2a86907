"""The registry's from-scratch models: the lecture's RNN, GRU and LSTM cells batched for speed.

Each cell computes exactly what the lecture's readable function computes (rnn, gru, lstm; tests keep
them equal, outputs and gradients), rearranged the way `rnn` already is: the input projection of all
time steps is one lookup or product before the loop, the recurrent products of all gates are one
product per step, and the output layer is one product after the loop. Cells stack in layers, with
an optional embedding in front and dropout between layers.

The parameters keep the lecture's layout, layer after layer: [W_embed] (only with an embedding),
then each layer's gate arrays in the order of get_params / get_gru_params / get_lstm_params without
the output layer, then [W_hq, b_q]. A one-layer model's parameters are the lecture's list itself.
"""
from mxnet import autograd, nd

from .gated import get_gru_params, get_lstm_params
from .model import get_params, linear, normal, split_steps

CELLS = {  # cell -> (the lecture's get_params, arrays per gate block, gate blocks, arrays of state)
    "rnn": (get_params, 3, 1, 1),
    "gru": (get_gru_params, 3, 3, 1),
    "lstm": (get_lstm_params, 3, 4, 2),
}


def _rnn_steps(XW, state, W_h_T):
    """The tanh RNN over precomputed input projections; returns (stacked H, (H,))."""
    H, = state
    hiddens = []
    for XW_t in XW:  # XW_t: (batch, hidden)
        H = nd.Activation(XW_t + linear(H, W_h_T), act_type="tanh")
        hiddens.append(H)
    return nd.concat(*hiddens, dim=0), (H,)  # (steps * batch, hidden)


def _gru_steps(XW, state, W_h_T):
    """The lecture's GRU, gates z, r and candidate h; R applies after H W_hh, as in Gluon and cuDNN."""
    H, = state
    n = H.shape[1]
    hiddens = []
    for XW_t in XW:  # XW_t: (batch, 3 * hidden) = X W_x[z, r, h] + b[z, r, h]
        HW = linear(H, W_h_T)  # (batch, 3 * hidden) = [H W_hz, H W_hr, H W_hh]
        ZR = nd.Activation(nd.slice_axis(XW_t, axis=1, begin=0, end=2 * n)
                           + nd.slice_axis(HW, axis=1, begin=0, end=2 * n), act_type="sigmoid")
        Z, R = nd.split(ZR, num_outputs=2, axis=1)  # update and reset gates, (batch, hidden) each
        H_tilda = nd.Activation(nd.slice_axis(XW_t, axis=1, begin=2 * n, end=None)
                                + R * nd.slice_axis(HW, axis=1, begin=2 * n, end=None), act_type="tanh")
        H = Z * H + (1 - Z) * H_tilda
        hiddens.append(H)
    return nd.concat(*hiddens, dim=0), (H,)


def _lstm_steps(XW, state, W_h_T):
    """The lecture's LSTM, gates i, f, o and candidate cell c."""
    H, C = state
    n = H.shape[1]
    hiddens = []
    for XW_t in XW:  # XW_t: (batch, 4 * hidden)
        G = XW_t + linear(H, W_h_T)  # (batch, 4 * hidden), every gate's pre-activation at once
        I, F, O = nd.split(nd.Activation(nd.slice_axis(G, axis=1, begin=0, end=3 * n), act_type="sigmoid"),
                           num_outputs=3, axis=1)
        C = F * C + I * nd.Activation(nd.slice_axis(G, axis=1, begin=3 * n, end=None), act_type="tanh")
        H = O * nd.Activation(C, act_type="tanh")
        hiddens.append(H)
    return nd.concat(*hiddens, dim=0), (H, C)


STEPS = {"rnn": _rnn_steps, "gru": _gru_steps, "lstm": _lstm_steps}


class FastScratchModel:
    """RNN, GRU or LSTM cells from scratch, batched for speed, in layers; the model interface of model.py."""

    def __init__(self, cell, *, vocab_size, num_hiddens, ctx, num_layers=1, embed_size=0, dropout=0.0, name=None):
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        self.cell, self.vocab_size, self.num_hiddens = cell, vocab_size, num_hiddens
        self.num_layers, self.embed_size, self.dropout, self.name = num_layers, embed_size, dropout, name
        get, per_gate, gates, _ = CELLS[cell]
        if num_layers == 1 and not embed_size:  # exactly the lecture's parameters, drawn the same way
            self.params = get(vocab_size, num_hiddens, ctx)
            return
        self.params = [normal((vocab_size, embed_size), ctx)] if embed_size else []  # W_embed
        inputs = embed_size or vocab_size
        for _ in range(num_layers):
            self.params += get(inputs, num_hiddens, ctx)[:per_gate * gates]  # this layer's gate arrays
            inputs = num_hiddens
        self.params += [normal((num_hiddens, vocab_size), ctx), nd.zeros(vocab_size, ctx=ctx)]  # W_hq, b_q
        for p in self.params:
            p.attach_grad()

    def __call__(self, X, state):
        """X (batch, steps) token indices -> logits (steps * batch, vocab), new state."""
        _, per_gate, gates, n_state = CELLS[self.cell]
        num_steps = X.shape[1]
        tokens = X.T.reshape((-1,))  # (steps * batch,), time-major
        params = iter(self.params)
        Z = nd.Embedding(tokens, next(params), input_dim=self.vocab_size, output_dim=self.embed_size) \
            if self.embed_size else None  # (steps * batch, embed)
        new_state = []
        for layer in range(self.num_layers):
            arrays = [next(params) for _ in range(per_gate * gates)]
            W_x = nd.concat(*arrays[0::3], dim=1)          # (inputs, gates * hidden)
            W_h_T = nd.concat(*arrays[1::3], dim=1).T      # (gates * hidden, hidden)
            b = nd.concat(*arrays[2::3], dim=0)            # (gates * hidden,)
            if Z is None:  # one-hot input: X_t W_x is row X_t of W_x, a lookup instead of a product
                XW = nd.broadcast_add(nd.Embedding(tokens, W_x, input_dim=self.vocab_size,
                                                   output_dim=W_x.shape[1]), b.reshape((1, -1)))
            else:
                XW = linear(Z, W_x.T, b)                   # (steps * batch, gates * hidden)
            layer_state = state[layer * n_state:(layer + 1) * n_state]
            Z, layer_state = STEPS[self.cell](split_steps(XW, num_steps), layer_state, W_h_T)
            new_state += layer_state
            if self.dropout and layer < self.num_layers - 1 and autograd.is_training():
                Z = nd.Dropout(Z, p=self.dropout)           # between layers, only while training
        W_hq, b_q = next(params), next(params)
        return linear(Z, W_hq.T, b_q), tuple(new_state)    # (steps * batch, vocab)

    def begin_state(self, batch_size, ctx):
        """Zeros for every layer: (H,) per layer for rnn and gru, (H, C) per layer for lstm."""
        n_state = CELLS[self.cell][3]
        return tuple(nd.zeros((batch_size, self.num_hiddens), ctx=ctx) for _ in range(self.num_layers * n_state))

    def param_arrays(self):
        """The trainable arrays, each with its .grad."""
        return list(self.params)

    @property
    def config(self):
        """What the registry needs to rebuild this model."""
        if self.name is None:
            return None
        return {"model": self.name, "hidden": self.num_hiddens, "layers": self.num_layers,
                "embed": self.embed_size, "dropout": self.dropout}
