"""The GRU cell three ways: the lecture's step (autograd), a batched forward, and its backward by hand.

Z, R = sigma(X W_x + H W_h + b), H~ = tanh(X W_xh + R * (H W_hh) + b_h), H = Z * H + (1 - Z) * H~:
the reset gate acts after the recurrent product, as in Gluon's and cuDNN's GRU.
"""
from mxnet import nd

from .ops import add, cols, gate_params, linear, mul, output_params, sigmoid_grad, sub, tanh_grad, with_grads
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


def gru_forward(XW, state, W_h_T, slots=None):
    """Batched layer: all three gates' recurrent products in one product per step; H_t goes into slots[t]
    when given (see rnn_forward); returns (the H_t, new state, cache)."""
    H, = state
    n = H.shape[1]
    cache = {"H_prev": [], "ZR": [], "HW_h": [], "H_tilda": []}
    hiddens = []
    for t, XW_t in enumerate(XW):
        HW = linear(H, W_h_T)  # (batch, 3 * hidden) = [H W_hz, H W_hr, H W_hh]
        ZR = nd.Activation(add(cols(XW_t, 0, 2 * n), cols(HW, 0, 2 * n)), act_type="sigmoid")
        Z, R = cols(ZR, 0, n), cols(ZR, n, 2 * n)  # update and reset gates, (batch, hidden) each
        HW_h = cols(HW, 2 * n, 3 * n)
        H_tilda = nd.Activation(add(cols(XW_t, 2 * n, 3 * n), mul(R, HW_h)), act_type="tanh")
        cache["H_prev"].append(H)
        H = add(H_tilda, mul(Z, sub(H, H_tilda)), out=slots[t] if slots else None)  # Z * H + (1 - Z) * H~
        for key, value in (("ZR", ZR), ("HW_h", HW_h), ("H_tilda", H_tilda)):
            cache[key].append(value)
        hiddens.append(H)
    return hiddens, (H,), cache


def gru_backward(dH, cache, W_h, dG_x, dG_h):
    """Fill dG_x[t] = [dz, dr, dh~] (for the input projection) and dG_h[t] = [dz, dr, R * dh~] (for the
    recurrent product), the gates before their nonlinearities, last step first; dH's slots are added into."""
    for t in reversed(range(len(dH))):
        ZR, H_tilda, H_prev = cache["ZR"][t], cache["H_tilda"][t], cache["H_prev"][t]
        n = H_tilda.shape[1]
        Z, R = cols(ZR, 0, n), cols(ZR, n, 2 * n)
        dH_Z = mul(dH[t], Z)
        dH_tilda_pre = tanh_grad(sub(dH[t], dH_Z), H_tilda)                # through (1 - Z) and tanh
        dR = mul(dH_tilda_pre, cache["HW_h"][t])
        dZR_pre = sigmoid_grad(nd.concat(mul(dH[t], sub(H_prev, H_tilda)), dR, dim=1), ZR)  # through sigmoids
        nd.concat(dZR_pre, dH_tilda_pre, dim=1, out=dG_x[t])
        nd.concat(dZR_pre, mul(R, dH_tilda_pre), dim=1, out=dG_h[t])
        if t:
            add(dH[t - 1], add(dH_Z, linear(dG_h[t], W_h)), out=dH[t - 1])
