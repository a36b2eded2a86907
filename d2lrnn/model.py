"""Model: the lecture's RNN from scratch, and the concise Gluon version."""
from . import _compat  # noqa: F401
from mxnet import nd
from mxnet.gluon import nn


def _normal(shape, ctx):
    """N(0, 0.01) weights on ctx."""
    return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)


def get_params(vocab_size, num_hiddens, ctx):
    """[W_xh, W_hh, b_h, W_hq, b_q] with gradients attached, all on ctx."""
    params = [
        _normal((vocab_size, num_hiddens), ctx),   # W_xh
        _normal((num_hiddens, num_hiddens), ctx),  # W_hh
        nd.zeros(num_hiddens, ctx=ctx),            # b_h
        _normal((num_hiddens, vocab_size), ctx),   # W_hq
        nd.zeros(vocab_size, ctx=ctx),             # b_q
    ]
    for p in params:
        p.attach_grad()
    return params


def linear(X, W_T, b=None):
    """X W + b, with W given transposed as (out, in): nd.FullyConnected beats nd.dot on a CPU."""
    return nd.FullyConnected(X, W_T, b, no_bias=b is None, num_hidden=W_T.shape[0])


def split_steps(Y, num_steps):
    """(num_steps * batch, n) -> a list of num_steps arrays of (batch, n)."""
    parts = nd.split(Y, num_outputs=num_steps, axis=0)
    return [parts] if num_steps == 1 else list(parts)  # split returns a bare array for one part


def init_rnn_state(batch_size, num_hiddens, ctx):
    """The state as a tuple (an LSTM needs two arrays, so every model returns a tuple)."""
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),)


def rnn(inputs, state, params):
    """Run the RNN over a list of (batch, vocab) inputs; return (outputs, (H,))."""
    # H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h) and Y_t = H_t W_hq + b_q, as in the lecture. Only
    # H_{t-1} W_hh has to wait for the step before: X_t W_xh is one matrix product over all steps
    # before the loop, and H_t W_hq one over all the stacked states after it.
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


class RNNModel(nn.Block):
    """One-hot inputs -> a Gluon recurrent layer -> a dense layer over the vocabulary."""

    def __init__(self, rnn_layer, vocab_size, **kwargs):
        super().__init__(**kwargs)
        self.rnn = rnn_layer
        self.vocab_size = vocab_size
        self.dense = nn.Dense(vocab_size)

    def forward(self, inputs, state):
        """inputs (batch, steps) -> logits (steps * batch, vocab), new state."""
        X = nd.one_hot(inputs.T, self.vocab_size)  # (steps, batch, vocab)
        Y, state = self.rnn(X, state)              # Y: (steps, batch, hidden)
        output = self.dense(Y.reshape((-1, Y.shape[-1])))  # (steps * batch, vocab)
        return output, state

    def begin_state(self, *args, **kwargs):
        """Initial state of the recurrent layer (a list of arrays)."""
        return self.rnn.begin_state(*args, **kwargs)
