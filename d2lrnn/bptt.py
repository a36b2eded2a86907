"""Backpropagation through time by hand, for the registry's RNN, GRU and LSTM (fast.FastScratchModel).

autograd records every operation of the forward pass and then runs each one's derivative, one time
step at a time, adding up 35 small products for the gradient of W_hh. Written out by hand, the
backward pass keeps only what must go step by step, the gradient flowing back through the state
(dH_{t-1} = dG_t W_h^T, one product per step), and gets every weight gradient of all steps from ONE
matrix product: dW_h = [H_{-1}, ..., H_{T-2}]^T [dG_0; ...; dG_{T-1}], likewise W_x and W_hq. Nothing
is recorded, and the gradients go straight into each parameter's .grad. Tests check it against
autograd and finite differences.

Notation per layer: G_t are the gate pre-activations of step t (batch, gates * hidden), Z the
layer's input for all steps (steps * batch, inputs), H the hidden states; the loss is the mean
softmax cross-entropy over all steps * batch predictions, as in the lecture.
"""
from mxnet import nd

from .fast import add, cols, mul, sub
from .model import linear, split_steps


# --- each cell's backward pass over all steps of one layer (the forward passes are in fast.py) -------

def rnn_backward(dZ, cache, W_h):
    """Given dLoss/dH_t from above for every step, return dG_t per step (input and recurrent part alike)."""
    dG, dH_next = [], None
    for t in reversed(range(len(dZ))):
        dH = dZ[t] if dH_next is None else add(dZ[t], dH_next)
        H = cache["H"][t]
        dA = mul(dH, 1 - mul(H, H))  # through tanh: (batch, hidden)
        dG.append(dA)
        dH_next = linear(dA, W_h)    # dA W_h^T: FullyConnected's weight is (out, in) = W_h itself
    return dG[::-1], dG[::-1]        # (for the input projection, for the recurrent weights)


def gru_backward(dZ, cache, W_h):
    """dG for the input projection [dz, dr, dh~] and for the recurrent product [dz, dr, R * dh~]."""
    dG_x, dG_h, dH_next = [], [], None
    for t in reversed(range(len(dZ))):
        dH = dZ[t] if dH_next is None else add(dZ[t], dH_next)
        ZR, H_tilda, H_prev = cache["ZR"][t], cache["H_tilda"][t], cache["H_prev"][t]
        n = H_tilda.shape[1]
        Z, R = cols(ZR, 0, n), cols(ZR, n, 2 * n)
        dH_tilda_pre = mul(mul(dH, 1 - Z), 1 - mul(H_tilda, H_tilda))  # through (1 - Z) and tanh
        dZ_gate = mul(dH, sub(H_prev, H_tilda))
        dR = mul(dH_tilda_pre, cache["HW_h"][t])
        dZR_pre = mul(nd.concat(dZ_gate, dR, dim=1), mul(ZR, 1 - ZR))  # through the sigmoids
        dG_x.append(nd.concat(dZR_pre, dH_tilda_pre, dim=1))
        dG_h.append(nd.concat(dZR_pre, mul(R, dH_tilda_pre), dim=1))
        dH_next = add(mul(dH, Z), linear(dG_h[-1], W_h))
    return dG_x[::-1], dG_h[::-1]


def lstm_backward(dZ, cache, W_h):
    """dG = [dI, dF, dO, dC~] before their nonlinearities, step by step backwards."""
    dG, dH_next, dC_next = [], None, None
    for t in reversed(range(len(dZ))):
        dH = dZ[t] if dH_next is None else add(dZ[t], dH_next)
        IFO, C_tilda, tanh_C = cache["IFO"][t], cache["C_tilda"][t], cache["tanh_C"][t]
        n = C_tilda.shape[1]
        I, F, O = cols(IFO, 0, n), cols(IFO, n, 2 * n), cols(IFO, 2 * n, 3 * n)
        dC = mul(mul(dH, O), 1 - mul(tanh_C, tanh_C))  # through H = O * tanh(C)
        if dC_next is not None:
            dC = add(dC, dC_next)
        dIFO = nd.concat(mul(dC, C_tilda), mul(dC, cache["C_prev"][t]), mul(dH, tanh_C), dim=1)
        dG_t = nd.concat(mul(dIFO, mul(IFO, 1 - IFO)), mul(mul(dC, I), 1 - mul(C_tilda, C_tilda)), dim=1)
        dG.append(dG_t)
        dC_next = mul(dC, F)
        dH_next = linear(dG_t, W_h)
    return dG[::-1], dG[::-1]


BACKWARD = {"rnn": rnn_backward, "gru": gru_backward, "lstm": lstm_backward}


# --- the whole model ---------------------------------------------------------------------------

def _column_sums(A):
    """A.sum(axis=0) as a product with a row of ones: BLAS does it far faster than MXNet's reduce."""
    return nd.dot(nd.ones((1, A.shape[0]), ctx=A.context), A).reshape((-1,))


def _scatter_rows(tokens, rows, vocab_size):
    """Sum of `rows` grouped by token, (vocab, width): one_hot(tokens)^T rows.

    A dense product: MXNet's sparse one-hot would need a host sync per minibatch to size its result.
    """
    return nd.dot(nd.one_hot(tokens, vocab_size), rows, transpose_a=True)


def _set_gate_grads(arrays, dW_x, dW_h, db):
    """Split the stacked gradients back onto the lecture's per-gate arrays [W_x, W_h, b] x gates."""
    for k, (W_x, W_h, b) in enumerate(zip(arrays[0::3], arrays[1::3], arrays[2::3])):
        n = W_h.shape[1]
        W_x.grad[:] = nd.slice_axis(dW_x, axis=1, begin=k * n, end=(k + 1) * n)
        W_h.grad[:] = nd.slice_axis(dW_h, axis=1, begin=k * n, end=(k + 1) * n)
        b.grad[:] = nd.slice_axis(db, axis=0, begin=k * n, end=(k + 1) * n)


def loss_and_grads(model, X, Y, state):
    """The minibatch's mean cross-entropy (a (1,) array) and new state; every gradient written into p.grad."""
    logits, new_state, (tokens, Z, layers) = model.forward_layers(X, state, training=True)
    num_steps, V = X.shape[1], model.vocab_size
    W_hq, b_q = model.params[-2:]
    log_p = nd.log_softmax(logits)                           # (steps * batch, vocab)
    y = Y.T.reshape((-1,))                                   # (steps * batch,), time-major like the logits
    loss = -nd.pick(log_p, y).mean()
    dlogits = (nd.exp(log_p) - nd.one_hot(y, V)) / y.shape[0]  # d mean cross-entropy / d logits
    nd.dot(Z, dlogits, transpose_a=True, out=W_hq.grad)      # (n, vocab): all steps in one product
    b_q.grad[:] = _column_sums(dlogits)
    dZ = nd.dot(dlogits, W_hq, transpose_b=True)             # (steps * batch, n)
    for layer in reversed(layers):                           # top layer first
        if layer["mask"] is not None:
            dZ = mul(dZ, layer["mask"])                      # back through the dropout between layers
        dG_x, dG_h = BACKWARD[model.cell](split_steps(dZ, num_steps), layer["cache"], layer["W_h"])
        dG_x, dG_h = nd.concat(*dG_x, dim=0), nd.concat(*dG_h, dim=0)       # (steps * batch, G n)
        H_prev = nd.concat(layer["s0"][0], *layer["hiddens"][:-1], dim=0)    # the state entering each step
        dW_h = nd.dot(H_prev, dG_h, transpose_a=True)                        # (n, G n): ONE product
        if layer["Z_in"] is None:                                            # one-hot input: rows by token
            dW_x = _scatter_rows(tokens, dG_x, V)
        else:
            dW_x = nd.dot(layer["Z_in"], dG_x, transpose_a=True)             # (inputs, G n)
            dZ = nd.dot(dG_x, layer["W_x"], transpose_b=True)                # (steps * batch, inputs)
        _set_gate_grads(layer["arrays"], dW_x, dW_h, _column_sums(dG_x))
    if model.embed_size:
        model.params[0].grad[:] = _scatter_rows(tokens, dZ, V)
    return loss, new_state
