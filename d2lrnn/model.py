"""Model: the lecture's RNN from scratch, and the concise Gluon version."""
from . import _compat  # noqa: F401
from mxnet import gluon, nd
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


def init_rnn_state(batch_size, num_hiddens, ctx):
    """The state as a tuple (an LSTM needs two arrays, so every model returns a tuple)."""
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),)


def rnn(inputs, state, params):
    """Run the RNN over a list of (batch, vocab) inputs; return (outputs, (H,))."""
    W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        H = nd.tanh(nd.dot(X, W_xh) + nd.dot(H, W_hh) + b_h)  # (batch, hidden)
        Y = nd.dot(H, W_hq) + b_q                             # (batch, vocab)
        outputs.append(Y)
    return outputs, (H,)


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
