"""The registry's from-scratch models: the lecture's RNN, GRU and LSTM cells batched for speed.

Each cell computes exactly what the lecture's readable function computes (rnn, gru, lstm; tests keep
them equal, outputs and gradients), rearranged the way `rnn` already is: the input projection of all
time steps is one lookup or product before the loop, the recurrent products of all gates are one
product per step, and the output layer is one product after the loop. Cells stack in layers, with
an optional embedding in front and dropout between layers. Training does not record these
operations for autograd: bptt.py computes the gradients by hand.

The parameters keep the lecture's layout, layer after layer: [W_embed] (only with an embedding),
then each layer's gate arrays in the order of get_params / get_gru_params / get_lstm_params without
the output layer, then [W_hq, b_q]. A one-layer model's parameters are the lecture's list itself.
"""
from mxnet import autograd, nd

from .gated import get_gru_params, get_lstm_params
from .model import get_params, linear, normal, split_steps

# Same-shape + and *: `a + b` on NDArrays goes through broadcast_add, whose backward sums over
# (absent) broadcast axes and costs several times more under autograd.
add, mul, sub = nd.elemwise_add, nd.elemwise_mul, nd.elemwise_sub


def cols(A, begin, end):
    """Columns begin:end of A (slice_axis is several times cheaper than split on a CPU)."""
    return nd.slice_axis(A, axis=1, begin=begin, end=end)


def dropout_mask(shape, p, ctx):
    """Inverted dropout: 0 with probability p, else 1 / (1 - p), so the expected value is unchanged."""
    return (nd.random.uniform(shape=shape, ctx=ctx) >= p) / (1 - p)


def rnn_forward(XW, state, W_h_T):
    """H_t = tanh(XW_t + H_{t-1} W_h); returns (stacked H, new state, cache)."""
    H, = state
    hiddens = []
    for XW_t in XW:
        H = nd.Activation(add(XW_t, linear(H, W_h_T)), act_type="tanh")  # (batch, hidden)
        hiddens.append(H)
    return hiddens, (H,), {"H": hiddens}


def gru_forward(XW, state, W_h_T):
    """The lecture's GRU: Z, R = sigma(...), H~ = tanh(x_h + R * (H W_hh)), H = Z * H + (1 - Z) * H~."""
    H, = state
    n = H.shape[1]
    cache = {"H_prev": [], "ZR": [], "HW_h": [], "H_tilda": []}
    hiddens = []
    for XW_t in XW:
        HW = linear(H, W_h_T)  # (batch, 3 * hidden) = [H W_hz, H W_hr, H W_hh]
        ZR = nd.Activation(add(cols(XW_t, 0, 2 * n), cols(HW, 0, 2 * n)), act_type="sigmoid")
        Z, R = cols(ZR, 0, n), cols(ZR, n, 2 * n)  # update and reset gates, (batch, hidden) each
        HW_h = cols(HW, 2 * n, 3 * n)
        H_tilda = nd.Activation(add(cols(XW_t, 2 * n, 3 * n), mul(R, HW_h)), act_type="tanh")
        cache["H_prev"].append(H)
        H = add(H_tilda, mul(Z, sub(H, H_tilda)))  # Z * H + (1 - Z) * H~
        for key, value in (("ZR", ZR), ("HW_h", HW_h), ("H_tilda", H_tilda)):
            cache[key].append(value)
        hiddens.append(H)
    return hiddens, (H,), cache


def lstm_forward(XW, state, W_h_T):
    """The lecture's LSTM: I, F, O = sigma(...), C~ = tanh(...), C = F * C + I * C~, H = O * tanh(C)."""
    H, C = state
    n = H.shape[1]
    cache = {"IFO": [], "C_tilda": [], "C_prev": [], "tanh_C": []}
    hiddens = []
    for XW_t in XW:
        G = add(XW_t, linear(H, W_h_T))  # (batch, 4 * hidden)
        IFO = nd.Activation(cols(G, 0, 3 * n), act_type="sigmoid")
        I, F, O = cols(IFO, 0, n), cols(IFO, n, 2 * n), cols(IFO, 2 * n, 3 * n)
        C_tilda = nd.Activation(cols(G, 3 * n, 4 * n), act_type="tanh")
        cache["C_prev"].append(C)
        C = add(mul(F, C), mul(I, C_tilda))
        tanh_C = nd.Activation(C, act_type="tanh")
        H = mul(O, tanh_C)
        for key, value in (("IFO", IFO), ("C_tilda", C_tilda), ("tanh_C", tanh_C)):
            cache[key].append(value)
        hiddens.append(H)
    return hiddens, (H, C), cache


CELLS = {  # cell -> (its forward over one layer, the lecture's get_params, gate blocks, arrays of state)
    "rnn": (rnn_forward, get_params, 1, 1),
    "gru": (gru_forward, get_gru_params, 3, 1),
    "lstm": (lstm_forward, get_lstm_params, 4, 2),
}


class FastScratchModel:
    """RNN, GRU or LSTM cells from scratch, batched for speed, in layers; the model interface of model.py."""

    backward_by_hand = True  # training calls loss_and_grads (bptt.py) instead of autograd

    def __init__(self, cell, *, vocab_size, num_hiddens, ctx, num_layers=1, embed_size=0, dropout=0.0, name=None,
                 params=None):
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        self.cell, self.vocab_size, self.num_hiddens = cell, vocab_size, num_hiddens
        self.num_layers, self.embed_size, self.dropout, self.name = num_layers, embed_size, dropout, name
        _, get, gates, _ = CELLS[cell]
        if params is not None:  # the lecture's list for one layer, e.g. from get_params (trained in place)
            self.params = params
            return
        if num_layers == 1 and not embed_size:  # exactly the lecture's parameters, drawn the same way
            self.params = get(vocab_size, num_hiddens, ctx)
            return
        self.params = [normal((vocab_size, embed_size), ctx)] if embed_size else []  # W_embed
        inputs = embed_size or vocab_size
        for _ in range(num_layers):
            self.params += get(inputs, num_hiddens, ctx)[:3 * gates]  # this layer's [W_x, W_h, b] per gate
            inputs = num_hiddens
        self.params += [normal((num_hiddens, vocab_size), ctx), nd.zeros(vocab_size, ctx=ctx)]  # W_hq, b_q
        for p in self.params:
            p.attach_grad()

    def forward_layers(self, X, state, training):
        """(logits (steps * batch, vocab), new state, per-layer records for the backward pass)."""
        forward, _, gates, n_state = CELLS[self.cell]
        num_steps, ctx = X.shape[1], X.context
        tokens = X.T.reshape((-1,))  # (steps * batch,), time-major
        params = iter(self.params)
        E = next(params) if self.embed_size else None
        Z = nd.Embedding(tokens, E, input_dim=self.vocab_size, output_dim=self.embed_size) if E is not None else None
        layers, new_state = [], []
        for layer in range(self.num_layers):
            arrays = [next(params) for _ in range(3 * gates)]
            W_x, W_h = nd.concat(*arrays[0::3], dim=1), nd.concat(*arrays[1::3], dim=1)  # (in, G n), (n, G n)
            b = nd.concat(*arrays[2::3], dim=0)                                            # (G n,)
            if Z is None:  # one-hot input: X_t W_x + b is row X_t of W_x + b, a lookup instead of a product
                table = nd.broadcast_add(W_x, b.reshape((1, -1)))                          # (vocab, G n)
                XW = nd.Embedding(tokens, table, input_dim=self.vocab_size, output_dim=W_x.shape[1])
            else:
                XW = linear(Z, W_x.T, b)                                                   # (steps * batch, G n)
            s0 = tuple(state[layer * n_state:(layer + 1) * n_state])
            hiddens, s, cache = forward(split_steps(XW, num_steps), s0, W_h.T)
            new_state += s
            Z_in, Z, mask = Z, nd.concat(*hiddens, dim=0), None                            # Z: (steps * batch, n)
            if training and self.dropout and layer < self.num_layers - 1:
                mask = dropout_mask(Z.shape, self.dropout, ctx)
                Z = mul(Z, mask)
            layers.append(dict(arrays=arrays, W_x=W_x, W_h=W_h, Z_in=Z_in, s0=s0, hiddens=hiddens, cache=cache,
                               mask=mask))
        W_hq, b_q = next(params), next(params)
        return linear(Z, W_hq.T, b_q), tuple(new_state), (tokens, Z, layers)  # logits: (steps * batch, vocab)

    def __call__(self, X, state):
        """X (batch, steps) token indices -> logits (steps * batch, vocab), new state."""
        logits, new_state, _ = self.forward_layers(X, state, training=autograd.is_training())
        return logits, new_state

    def loss_and_grads(self, X, Y, state):
        """The minibatch's mean cross-entropy and new state, with every gradient written into p.grad."""
        from .bptt import loss_and_grads

        return loss_and_grads(self, X, Y, state)

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
