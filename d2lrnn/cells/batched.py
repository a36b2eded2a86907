"""The registry's `*-bptt` models: the lecture's cells batched for speed, with the backward pass by hand.

Each layer computes exactly what the lecture's readable function computes (tests keep them equal,
outputs and gradients), rearranged: the input projection of all time steps is one lookup or product
before the loop, the recurrent products of all gates one product per step, the output layer one
product after the loop. Layers stack, with an optional embedding in front and dropout between layers.

Backward by hand: autograd would record every operation and run each one's derivative a time step at
a time, adding up 35 small products for the gradient of W_hh. Here only what must go step by step
does (the gradient flowing back through the state, one product per step, in each cell's `*_backward`)
and every weight gradient of all steps comes from ONE product: dW_h = [H_{-1} .. H_{T-2}]^T [dG_0; ..;
dG_{T-1}], likewise W_x and W_hq. Nothing is recorded; gradients go straight into each array's .grad.

Notation per layer: G_t are the gate pre-activations of step t (batch, gates * hidden), Z the layer's
input for all steps (steps * batch, inputs), H the hidden states; the loss is the mean softmax
cross-entropy over all steps * batch predictions, as in the lecture.
"""
from mxnet import autograd, nd

from . import CELLS
from .ops import column_sums, dropout_mask, gate_params, linear, mul, output_params, scatter_rows, split_steps
from .ops import normal, with_grads


class BatchedModel:
    """RNN, GRU or LSTM cells batched for speed, in layers, trained with the backward pass by hand."""

    backward_by_hand = True  # training calls loss_and_grads instead of autograd

    def __init__(self, cell, *, vocab_size, num_hiddens, ctx, num_layers=1, embed_size=0, dropout=0.0, name=None,
                 params=None):
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        self.cell, self.vocab_size, self.num_hiddens = cell, vocab_size, num_hiddens
        self.num_layers, self.embed_size, self.dropout, self.name = num_layers, embed_size, dropout, name
        if params is not None:  # the lecture's list for one layer, e.g. from get_params (trained in place)
            self.params = params
            return
        spec = CELLS[cell]
        if num_layers == 1 and not embed_size:  # exactly the lecture's parameters, drawn the same way
            self.params = spec.get_params(vocab_size, num_hiddens, ctx)
            return
        params = [normal((vocab_size, embed_size), ctx)] if embed_size else []  # W_embed
        inputs = embed_size or vocab_size
        for _ in range(num_layers):
            for _ in range(spec.gates):
                params += gate_params(inputs, num_hiddens, ctx)  # this layer's [W_x, W_h, b] per gate
            inputs = num_hiddens
        self.params = with_grads(params + output_params(num_hiddens, vocab_size, ctx))

    def forward_layers(self, X, state, training):
        """(logits (steps * batch, vocab), new state, per-layer records for the backward pass)."""
        spec = CELLS[self.cell]
        num_steps, ctx = X.shape[1], X.context
        tokens = X.T.reshape((-1,))  # (steps * batch,), time-major
        params = iter(self.params)
        E = next(params) if self.embed_size else None
        Z = nd.Embedding(tokens, E, input_dim=self.vocab_size, output_dim=self.embed_size) if E is not None else None
        layers, new_state = [], []
        for layer in range(self.num_layers):
            arrays = [next(params) for _ in range(3 * spec.gates)]
            W_x, W_h = nd.concat(*arrays[0::3], dim=1), nd.concat(*arrays[1::3], dim=1)  # (in, G n), (n, G n)
            b = nd.concat(*arrays[2::3], dim=0)                                            # (G n,)
            if Z is None:  # one-hot input: X_t W_x + b is row X_t of W_x + b, a lookup instead of a product
                table = nd.broadcast_add(W_x, b.reshape((1, -1)))                          # (vocab, G n)
                XW = nd.Embedding(tokens, table, input_dim=self.vocab_size, output_dim=W_x.shape[1])
            else:
                XW = linear(Z, W_x.T, b)                                                   # (steps * batch, G n)
            s0 = tuple(state[layer * spec.state_arrays:(layer + 1) * spec.state_arrays])
            hiddens, s, cache = spec.forward(split_steps(XW, num_steps), s0, W_h.T)
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
        """The minibatch's mean cross-entropy (a (1,) array) and new state; every gradient written into p.grad."""
        logits, new_state, (tokens, Z, layers) = self.forward_layers(X, state, training=True)
        num_steps, V = X.shape[1], self.vocab_size
        W_hq, b_q = self.params[-2:]
        log_p = nd.log_softmax(logits)                             # (steps * batch, vocab)
        y = Y.T.reshape((-1,))                                     # (steps * batch,), time-major like the logits
        loss = -nd.pick(log_p, y).mean()
        dlogits = (nd.exp(log_p) - nd.one_hot(y, V)) / y.shape[0]  # d mean cross-entropy / d logits
        nd.dot(Z, dlogits, transpose_a=True, out=W_hq.grad)        # (n, vocab): all steps in one product
        b_q.grad[:] = column_sums(dlogits)
        dZ = nd.dot(dlogits, W_hq, transpose_b=True)               # (steps * batch, n)
        for layer in reversed(layers):                             # top layer first
            if layer["mask"] is not None:
                dZ = mul(dZ, layer["mask"])                        # back through the dropout between layers
            dG_x, dG_h = CELLS[self.cell].backward(split_steps(dZ, num_steps), layer["cache"], layer["W_h"])
            dG_x, dG_h = nd.concat(*dG_x, dim=0), nd.concat(*dG_h, dim=0)       # (steps * batch, G n)
            H_prev = nd.concat(layer["s0"][0], *layer["hiddens"][:-1], dim=0)    # the state entering each step
            dW_h = nd.dot(H_prev, dG_h, transpose_a=True)                        # (n, G n): ONE product
            if layer["Z_in"] is None:                                            # one-hot input: rows by token
                dW_x = scatter_rows(tokens, dG_x, V)
            else:
                dW_x = nd.dot(layer["Z_in"], dG_x, transpose_a=True)             # (inputs, G n)
                dZ = nd.dot(dG_x, layer["W_x"], transpose_b=True)                # (steps * batch, inputs)
            set_gate_grads(layer["arrays"], dW_x, dW_h, column_sums(dG_x))
        if self.embed_size:
            self.params[0].grad[:] = scatter_rows(tokens, dZ, V)
        return loss, new_state

    def begin_state(self, batch_size, ctx):
        """Zeros for every layer: (H,) per layer for rnn and gru, (H, C) per layer for lstm."""
        n = self.num_layers * CELLS[self.cell].state_arrays
        return tuple(nd.zeros((batch_size, self.num_hiddens), ctx=ctx) for _ in range(n))

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


def set_gate_grads(arrays, dW_x, dW_h, db):
    """Split the stacked gradients back onto the lecture's per-gate arrays [W_x, W_h, b] x gates."""
    for k, (W_x, W_h, b) in enumerate(zip(arrays[0::3], arrays[1::3], arrays[2::3])):
        n = W_h.shape[1]
        W_x.grad[:] = nd.slice_axis(dW_x, axis=1, begin=k * n, end=(k + 1) * n)
        W_h.grad[:] = nd.slice_axis(dW_h, axis=1, begin=k * n, end=(k + 1) * n)
        b.grad[:] = nd.slice_axis(db, axis=0, begin=k * n, end=(k + 1) * n)
