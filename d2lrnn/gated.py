"""Gated recurrent models from scratch: the GRU and the LSTM, in the lecture's functional style."""
from mxnet import nd

from .model import init_rnn_state, normal

init_gru_state = init_rnn_state  # a GRU carries one array, H, exactly like the RNN


def _gate(vocab_size, num_hiddens, ctx):
    """One gate's [W_x, W_h, b]: input weights, hidden weights and a zero bias, on ctx."""
    return [normal((vocab_size, num_hiddens), ctx),   # W_x: (vocab, hidden)
            normal((num_hiddens, num_hiddens), ctx),  # W_h: (hidden, hidden)
            nd.zeros(num_hiddens, ctx=ctx)]           # b:   (hidden,)


def _with_output(gates, vocab_size, num_hiddens, ctx):
    """Append the output layer [W_hq, b_q] to the gate parameters and attach gradients."""
    params = gates + [normal((num_hiddens, vocab_size), ctx),  # W_hq: (hidden, vocab)
                      nd.zeros(vocab_size, ctx=ctx)]           # b_q:  (vocab,)
    for p in params:
        p.attach_grad()
    return params


def get_gru_params(vocab_size, num_hiddens, ctx):
    """[W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q] on ctx, gradients attached."""
    gates = []
    for _ in ("update z", "reset r", "candidate h"):
        gates += _gate(vocab_size, num_hiddens, ctx)
    return _with_output(gates, vocab_size, num_hiddens, ctx)


def gru(inputs, state, params):
    """Run the GRU over a list of (batch, vocab) inputs; return (outputs, (H,))."""
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        Z = nd.sigmoid(nd.dot(X, W_xz) + nd.dot(H, W_hz) + b_z)          # update gate (batch, hidden)
        R = nd.sigmoid(nd.dot(X, W_xr) + nd.dot(H, W_hr) + b_r)          # reset gate (batch, hidden)
        H_tilda = nd.tanh(nd.dot(X, W_xh) + R * nd.dot(H, W_hh) + b_h)  # candidate (batch, hidden)
        H = Z * H + (1 - Z) * H_tilda                                    # (batch, hidden)
        outputs.append(nd.dot(H, W_hq) + b_q)                            # (batch, vocab)
    return outputs, (H,)


def get_lstm_params(vocab_size, num_hiddens, ctx):
    """[W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq, b_q] on ctx."""
    gates = []
    for _ in ("input i", "forget f", "output o", "candidate cell c"):
        gates += _gate(vocab_size, num_hiddens, ctx)
    return _with_output(gates, vocab_size, num_hiddens, ctx)


def init_lstm_state(batch_size, num_hiddens, ctx):
    """An LSTM carries two arrays: the hidden state H and the memory cell C."""
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),
            nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx))


def lstm(inputs, state, params):
    """Run the LSTM over a list of (batch, vocab) inputs; return (outputs, (H, C))."""
    (W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq, b_q) = params
    H, C = state
    outputs = []
    for X in inputs:
        I = nd.sigmoid(nd.dot(X, W_xi) + nd.dot(H, W_hi) + b_i)        # input gate (batch, hidden)
        F = nd.sigmoid(nd.dot(X, W_xf) + nd.dot(H, W_hf) + b_f)        # forget gate (batch, hidden)
        O = nd.sigmoid(nd.dot(X, W_xo) + nd.dot(H, W_ho) + b_o)        # output gate (batch, hidden)
        C_tilda = nd.tanh(nd.dot(X, W_xc) + nd.dot(H, W_hc) + b_c)     # candidate cell (batch, hidden)
        C = F * C + I * C_tilda                                        # memory cell (batch, hidden)
        H = O * nd.tanh(C)                                             # (batch, hidden)
        outputs.append(nd.dot(H, W_hq) + b_q)                          # (batch, vocab)
    return outputs, (H, C)
