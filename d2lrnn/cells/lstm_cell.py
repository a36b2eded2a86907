"""The LSTM cell three ways: the lecture's step (autograd), a batched forward, and its backward by hand.

I, F, O = sigma(X W_x + H W_h + b), C~ = tanh(X W_xc + H W_hc + b_c), C = F * C + I * C~, H = O * tanh(C).
"""
from mxnet import nd

from .ops import add, cols, gate_params, linear, mul, output_params, sigmoid_grad, tanh_grad, with_grads


def get_lstm_params(vocab_size, num_hiddens, ctx):
    """[W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq, b_q] on ctx."""
    gates = []
    for _ in ("input i", "forget f", "output o", "candidate cell c"):
        gates += gate_params(vocab_size, num_hiddens, ctx)
    return with_grads(gates + output_params(num_hiddens, vocab_size, ctx))


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
        I = nd.sigmoid(nd.dot(X, W_xi) + nd.dot(H, W_hi) + b_i)        # noqa: E741  input gate (batch, hidden)
        F = nd.sigmoid(nd.dot(X, W_xf) + nd.dot(H, W_hf) + b_f)        # forget gate (batch, hidden)
        O = nd.sigmoid(nd.dot(X, W_xo) + nd.dot(H, W_ho) + b_o)        # noqa: E741  output gate (batch, hidden)
        C_tilda = nd.tanh(nd.dot(X, W_xc) + nd.dot(H, W_hc) + b_c)     # candidate cell (batch, hidden)
        C = F * C + I * C_tilda                                        # memory cell (batch, hidden)
        H = O * nd.tanh(C)                                             # (batch, hidden)
        outputs.append(nd.dot(H, W_hq) + b_q)                          # (batch, vocab)
    return outputs, (H, C)


def lstm_forward(XW, state, W_h_T, slots=None):
    """Batched layer: all four gates' recurrent products in one product per step; H_t goes into slots[t]
    when given (see rnn_forward); returns (the H_t, new state (H, C), cache)."""
    H, C = state
    n = H.shape[1]
    cache = {"IFO": [], "C_tilda": [], "C_prev": [], "tanh_C": []}
    hiddens = []
    for t, XW_t in enumerate(XW):
        G = add(XW_t, linear(H, W_h_T))  # (batch, 4 * hidden)
        IFO = nd.Activation(cols(G, 0, 3 * n), act_type="sigmoid")
        I, F, O = cols(IFO, 0, n), cols(IFO, n, 2 * n), cols(IFO, 2 * n, 3 * n)  # noqa: E741
        C_tilda = nd.Activation(cols(G, 3 * n, 4 * n), act_type="tanh")
        cache["C_prev"].append(C)
        C = add(mul(F, C), mul(I, C_tilda))
        tanh_C = nd.Activation(C, act_type="tanh")
        H = mul(O, tanh_C, out=slots[t] if slots else None)
        for key, value in (("IFO", IFO), ("C_tilda", C_tilda), ("tanh_C", tanh_C)):
            cache[key].append(value)
        hiddens.append(H)
    return hiddens, (H, C), cache


def lstm_backward(dH, cache, W_h, dG_x, dG_h):
    """Fill dG_x[t] (= dG_h[t]) with [dI, dF, dO, dC~] before their nonlinearities, last step first; dH's
    slots are added into."""
    dC_next = None
    for t in reversed(range(len(dH))):
        IFO, C_tilda, tanh_C = cache["IFO"][t], cache["C_tilda"][t], cache["tanh_C"][t]
        n = C_tilda.shape[1]
        I, F, O = cols(IFO, 0, n), cols(IFO, n, 2 * n), cols(IFO, 2 * n, 3 * n)  # noqa: E741
        dC = tanh_grad(mul(dH[t], O), tanh_C)  # through H = O * tanh(C)
        if dC_next is not None:
            dC = add(dC, dC_next)
        dIFO = nd.concat(mul(dC, C_tilda), mul(dC, cache["C_prev"][t]), mul(dH[t], tanh_C), dim=1)
        nd.concat(sigmoid_grad(dIFO, IFO), tanh_grad(mul(dC, I), C_tilda), dim=1, out=dG_x[t])
        dC_next = mul(dC, F)
        if t:
            add(dH[t - 1], linear(dG_x[t], W_h), out=dH[t - 1])
