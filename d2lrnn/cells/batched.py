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

from ..model import ArrayModel
from . import CELLS
from .ops import (
    column_sums,
    dropout_mask,
    gate_params,
    linear,
    mul,
    normal,
    outer,
    output_params,
    rows,
    scatter_rows,
    with_grads,
)


class BatchedModel(ArrayModel):
    """RNN, GRU or LSTM cells batched for speed, in layers, trained with the backward pass by hand."""

    backward_by_hand = True  # training calls loss_and_grads instead of autograd

    def __init__(self, cell, *, vocab_size, num_hiddens, ctx, num_layers=1, embed_size=0, dropout=0.0,
                 name=None, params=None):
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
        batch, num_steps, ctx, n = X.shape[0], X.shape[1], X.context, self.num_hiddens
        tokens = X.T.reshape((-1,))  # (steps * batch,), time-major
        params = iter(self.params)
        E = next(params) if self.embed_size else None
        Z = None if E is None else nd.Embedding(tokens, E, input_dim=self.vocab_size,
                                                output_dim=self.embed_size)    # (steps * batch, embed)
        layers, new_state = [], []
        for layer in range(self.num_layers):
            arrays = [next(params) for _ in range(3 * spec.gates)]
            W_x, W_h, b = (arrays[k] if spec.gates == 1 else nd.concat(*arrays[k::3], dim=int(k < 2))
                           for k in range(3))                                   # (in, G n), (n, G n), (G n,)
            if Z is None:  # one-hot input: X_t W_x + b is row X_t of W_x + b, a lookup instead of a product
                table = nd.broadcast_add(W_x, b.reshape((1, -1)))                   # (vocab, G n)
                XW = nd.Embedding(tokens, table, input_dim=self.vocab_size, output_dim=W_x.shape[1])
            else:
                XW = linear(Z, W_x.T, b)                                            # (steps * batch, G n)
            s0 = tuple(state[layer * spec.state_arrays:(layer + 1) * spec.state_arrays])
            if autograd.is_recording():  # autograd records no writes into views: stack the states afterwards
                hiddens, s, cache = spec.forward(rows(XW, batch), s0, W_h.T)
                H_all = nd.concat(s0[0], *hiddens, dim=0)
            else:                        # each H_t written straight into one array that stacks them all
                H_all = nd.empty(((num_steps + 1) * batch, n), ctx=ctx)          # the state, then every H_t
                H_all[:batch] = s0[0]
                _, s, cache = spec.forward(rows(XW, batch), s0, W_h.T, rows(H_all, batch)[1:])
            new_state += s
            Z_in, Z, mask = Z, H_all[batch:], None                                  # Z: (steps * batch, n)
            if training and self.dropout and layer < self.num_layers - 1:
                mask = dropout_mask(Z.shape, self.dropout, ctx)
                Z = mul(Z, mask)
            layers.append(dict(arrays=arrays, W_x=W_x, W_h=W_h, Z_in=Z_in, H_prev=H_all[:num_steps * batch],
                               cache=cache, mask=mask))
        W_hq, b_q = next(params), next(params)
        return linear(Z, W_hq.T, b_q), tuple(new_state), (tokens, Z, layers)  # logits: (steps * batch, vocab)

    def __call__(self, X, state):
        """X (batch, steps) token indices -> logits (steps * batch, vocab), new state."""
        logits, new_state, _ = self.forward_layers(X, state, training=autograd.is_training())
        return logits, new_state

    def loss_and_grads(self, X, Y, state):
        """The minibatch's mean cross-entropy (a (1,) array) and new state; every gradient into p.grad."""
        logits, new_state, (tokens, Z, layers) = self.forward_layers(X, state, training=True)
        batch, V, spec = X.shape[0], self.vocab_size, CELLS[self.cell]
        W_hq, b_q = self.params[-2:]
        log_p = nd.log_softmax(logits)                             # (steps * batch, vocab)
        y = Y.T.reshape((-1,))                                     # (steps * batch,), time-major like logits
        loss = -nd.pick(log_p, y).mean()
        dlogits = (nd.exp(log_p) - nd.one_hot(y, V)) / y.shape[0]  # d mean cross-entropy / d logits
        outer(Z, dlogits, out=W_hq.grad)                           # (n, vocab): all steps in one product
        column_sums(dlogits, out=b_q.grad)
        dZ = linear(dlogits, W_hq)                                 # (steps * batch, n) = dlogits W_hq^T
        for layer in reversed(layers):                             # top layer first
            if layer["mask"] is not None:
                dZ = mul(dZ, layer["mask"])                        # back through the dropout between layers
            dG_x = nd.empty((dZ.shape[0], layer["W_h"].shape[1]), ctx=dZ.context)  # (steps * batch, G n)
            dG_h = nd.empty(dG_x.shape, ctx=dG_x.context) if self.cell == "gru" else dG_x  # GRU: they differ
            spec.backward(rows(dZ, batch), layer["cache"], layer["W_h"], rows(dG_x, batch), rows(dG_h, batch))
            grads = [a.grad for a in layer["arrays"]]
            one = spec.gates == 1  # one gate block: write straight into the .grad arrays
            dW_h = outer(layer["H_prev"], dG_h, out=grads[1] if one else None)  # (n, G n): ONE product
            if layer["Z_in"] is None:                                       # one-hot input: rows by token
                dW_x = scatter_rows(tokens, dG_x, V, out=grads[0] if one else None)
            else:
                dW_x = outer(layer["Z_in"], dG_x, out=grads[0] if one else None)  # (inputs, G n)
                dZ = linear(dG_x, layer["W_x"])                                    # (steps * batch, inputs)
            db = column_sums(dG_x, out=grads[2] if one else None)
            if not one:
                set_gate_grads(layer["arrays"], dW_x, dW_h, db)
        if self.embed_size:
            scatter_rows(tokens, dZ, V, out=self.params[0].grad)
        return loss, new_state

    def begin_state(self, batch_size, ctx):
        """Zeros for every layer: (H,) per layer for rnn and gru, (H, C) per layer for lstm."""
        n = self.num_layers * CELLS[self.cell].state_arrays
        return tuple(nd.zeros((batch_size, self.num_hiddens), ctx=ctx) for _ in range(n))


def set_gate_grads(arrays, dW_x, dW_h, db):
    """Split the stacked gradients back onto the lecture's per-gate arrays [W_x, W_h, b] x gates."""
    for k, (W_x, W_h, b) in enumerate(zip(arrays[0::3], arrays[1::3], arrays[2::3])):
        n = W_h.shape[1]
        W_x.grad[:] = nd.slice_axis(dW_x, axis=1, begin=k * n, end=(k + 1) * n)
        W_h.grad[:] = nd.slice_axis(dW_h, axis=1, begin=k * n, end=(k + 1) * n)
        b.grad[:] = nd.slice_axis(db, axis=0, begin=k * n, end=(k + 1) * n)
