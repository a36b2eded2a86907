"""The tanh RNN cell three ways: the lecture's step (autograd), a batched forward, and its backward by hand.

H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h) and Y_t = H_t W_hq + b_q.
"""
from mxnet import nd

from .ops import add, linear, normal, split_steps, tanh_grad, with_grads


def get_params(vocab_size, num_hiddens, ctx):
    """[W_xh, W_hh, b_h, W_hq, b_q] with gradients attached, all on ctx."""
    return with_grads([
        normal((vocab_size, num_hiddens), ctx),   # W_xh
        normal((num_hiddens, num_hiddens), ctx),  # W_hh
        nd.zeros(num_hiddens, ctx=ctx),           # b_h
        normal((num_hiddens, vocab_size), ctx),   # W_hq
        nd.zeros(vocab_size, ctx=ctx),            # b_q
    ])


def init_rnn_state(batch_size, num_hiddens, ctx):
    """The state as a tuple (an LSTM needs two arrays, so every model returns a tuple)."""
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),)


def rnn(inputs, state, params):
    """Run the RNN over a list of (batch, vocab) inputs; return (outputs, (H,))."""
    # Only H_{t-1} W_hh has to wait for the step before: X_t W_xh is one matrix product over all
    # steps before the loop, and H_t W_hq one over all the stacked states after it.
    W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    num_steps = len(inputs)
    XW = linear(nd.concat(*inputs, dim=0), W_xh.T, b_h)  # (num_steps * batch, hidden), all steps
    XW = split_steps(XW, num_steps)                       # num_steps arrays of (batch, hidden)
    W_hh_T = W_hh.T  # transposed once, not once per step
    hiddens = []
    for XW_t in XW:  # the recurrence: step t needs H from step t - 1
        # nd.Activation's tanh is oneDNN's vectorised one, several times faster than nd.tanh
        H = nd.Activation(XW_t + linear(H, W_hh_T), act_type="tanh")  # (batch, hidden)
        hiddens.append(H)
    Y = linear(nd.concat(*hiddens, dim=0), W_hq.T, b_q)  # (num_steps * batch, vocab), all steps
    return split_steps(Y, num_steps), (H,)


def rnn_forward(XW, state, W_h_T, slots=None):
    """Batched layer: XW[t] = X_t W_x + b of every step; H_t = tanh(XW[t] + H_{t-1} W_h) is written into
    slots[t] when given (views of one array: the stacked states need no copy; not under autograd, which
    cannot record writes into views); returns (the H_t, new state, cache)."""
    H, = state
    hiddens = []
    for t, XW_t in enumerate(XW):
        pre = add(XW_t, linear(H, W_h_T))                                   # (batch, hidden)
        H = nd.Activation(pre, act_type="tanh", out=slots[t] if slots else None)  # oneDNN's vectorised tanh
        hiddens.append(H)
    return hiddens, (H,), {"H": hiddens}


def rnn_backward(dH, cache, W_h, dG_x, dG_h):
    """Given dLoss/dH_t from above for every step (its slots are added into), fill dG_x[t] (= dG_h[t]) with
    the gradient of step t's pre-activation, last step first."""
    H = cache["H"]
    for t in reversed(range(len(dH))):
        tanh_grad(dH[t], H[t], out=dG_x[t])                     # back through tanh: (batch, hidden)
        if t:  # on to the state before: + dG_t W_h^T (FullyConnected's weight is (out, in) = W_h itself)
            add(dH[t - 1], linear(dG_x[t], W_h), out=dH[t - 1])
