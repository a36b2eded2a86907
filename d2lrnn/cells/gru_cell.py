"""The GRU cell three ways: the lecture's step (autograd), a batched forward, and its backward by hand.

Z, R = sigma(X W_x + H W_h + b), H~ = tanh(X W_xh + R * (H W_hh) + b_h), H = Z * H + (1 - Z) * H~:
the reset gate acts after the recurrent product, as in Gluon's and cuDNN's GRU.
"""
from mxnet import nd

from .ops import add, cols, gate_params, linear, mul, output_params, sub, with_grads
from .rnn_cell import init_rnn_state

init_gru_state = init_rnn_state  # a GRU carries one array, H, exactly like the RNN


def get_gru_params(vocab_size, num_hiddens, ctx):
    """[W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q] on ctx, gradients attached."""
    gates = []
    for _ in ("update z", "reset r", "candidate h"):
        gates += gate_params(vocab_size, num_hiddens, ctx)
    return with_grads(gates + output_params(num_hiddens, vocab_size, ctx))


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


def gru_forward(XW, state, W_h_T):
    """Batched layer: all three gates' recurrent products in one product per step; (hiddens, state, cache)."""
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
