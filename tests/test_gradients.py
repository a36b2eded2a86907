"""Gradients through time: autograd against finite differences, and exact exploding/vanishing cases."""
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

import d2lrnn
from d2lrnn import get_lstm_params, get_params, init_lstm_state, init_rnn_state, lstm, rnn, to_onehot
from d2lrnn.cells import CELLS
from d2lrnn.gradients import param_grad_norms, state_grad_norms

from helpers import CPU, OTHER_CPU, arrays_created_off, assert_all_on, randomize

V, HID = 4, 3
SEQ = [0, 2, 1, 3, 3, 0, 1]  # 6 inputs, the loss is on the 7th token
MODELS = [(c.get_params, c.init_state, c.step) for c in CELLS.values()]  # (get, init, cell)


def _model(cell, init, params, ctx=CPU):
    return d2lrnn.ScratchModel(cell, None, init, vocab_size=V, num_hiddens=HID, ctx=ctx, params=params)


def _random_params(get, scale=0.8):
    return randomize(get(V, HID, CPU), scale=scale)


def _last_loss64(model, params64, state64, seq):
    """Last-step cross-entropy in float64, reading seq[:-1] one step at a time from state64."""
    X = [nd.one_hot(nd.array([i], dtype="float64"), V, dtype="float64") for i in seq[:-1]]
    outputs, _ = model(X, state64, params64)
    logits = outputs[-1].asnumpy()[0]
    return np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[seq[-1]]


def _fd_norms(model, params, n_state, seq, h=1e-5):
    """Central-difference |d loss / d state entering step j| for every j, oldest first (float64)."""
    params64 = [p.astype("float64") for p in params]
    norms = []
    for j in range(len(seq) - 1):
        head = seq[:j + 1]  # the steps before j, then the state entering step j is perturbed
        zero = tuple(nd.zeros((1, HID), dtype="float64") for _ in range(n_state))
        prefix_state = zero if j == 0 else model(
            [nd.one_hot(nd.array([i], dtype="float64"), V, dtype="float64") for i in head[:-1]],
            zero, params64)[1]
        sq = 0.0
        for c in range(n_state):
            for u in range(HID):
                vals = []
                for sign in (1, -1):
                    state = [s.copy() for s in prefix_state]
                    state[c][0, u] += sign * h
                    vals.append(_last_loss64(model, params64, tuple(state), seq[j:]))
                sq += ((vals[0] - vals[1]) / (2 * h)) ** 2
        norms.append(np.sqrt(sq))
    return np.array(norms)[::-1]  # distance back from the last step, like state_grad_norms


@pytest.mark.parametrize("get, init, model", MODELS)
def test_state_grad_norms_match_finite_differences(get, init, model):
    params = _random_params(get)
    got = state_grad_norms(_model(model, init, params), SEQ, ctx=CPU)
    expected = _fd_norms(model, params, len(init(1, HID, CPU)), SEQ)
    assert got.shape == (len(SEQ) - 1,)
    assert expected.min() > 1e-4  # the check is not vacuous
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-6)


def _linear_regime_rnn(a):
    """Lecture rnn with W_xh = 0, b_h = 0, W_hh = a*I: H stays 0, so each step back multiplies by a."""
    params = _random_params(get_params)
    params[0][:] = 0
    params[1][:] = nd.array(a * np.eye(HID))
    params[2][:] = 0
    W_hq, b_q = params[3].asnumpy().astype(np.float64), params[4].asnumpy().astype(np.float64)
    p = np.exp(b_q - b_q.max())
    p /= p.sum()
    p[SEQ[-1]] -= 1                      # d loss / d logits = softmax - one_hot(target)
    return params, np.linalg.norm(W_hq @ p)  # |d loss / d H_T|


@pytest.mark.parametrize("a", [2.0, 0.5])
def test_exploding_and_vanishing_are_exact_powers(a):
    params, g_T = _linear_regime_rnn(a)
    got = state_grad_norms(_model(rnn, init_rnn_state, params), SEQ, ctx=CPU)
    k = np.arange(len(SEQ) - 1)
    np.testing.assert_allclose(got, g_T * a ** (k + 1), rtol=1e-5)


def test_clipping_caps_every_step_and_is_inactive_when_large():
    seq = [0, 1] * 8
    params, g_T = _linear_regime_rnn(2.0)
    theta = 4 * g_T
    model = _model(rnn, init_rnn_state, params)
    free = state_grad_norms(model, seq, ctx=CPU)
    clipped = state_grad_norms(model, seq, ctx=CPU, clip_theta=theta)
    assert free[-1] > 1000 * theta  # it really explodes without clipping
    np.testing.assert_allclose(clipped, np.minimum(free, theta), rtol=1e-5)
    loose = state_grad_norms(model, seq, ctx=CPU, clip_theta=1e9)
    np.testing.assert_allclose(loose, free, rtol=1e-6)


def test_lstm_clipping_uses_the_joint_norm_of_h_and_c():
    params = _random_params(get_lstm_params, scale=2.0)
    model = _model(lstm, init_lstm_state, params)
    free = state_grad_norms(model, SEQ, ctx=CPU)
    theta = free.max() / 3
    clipped = state_grad_norms(model, SEQ, ctx=CPU, clip_theta=theta)
    assert clipped.max() <= theta * (1 + 1e-5)
    np.testing.assert_allclose(clipped[0], min(free[0], theta), rtol=1e-5)


def _reference_param_norm(model, params, init, n):
    """Global gradient norm of the mean training loss, the lecture's way (backward into p.grad)."""
    X = nd.array([SEQ[:n]])
    with autograd.record():
        outputs, _ = model(to_onehot(X, V), init(1, HID, CPU), params)
        loss = gloss.SoftmaxCrossEntropyLoss()(nd.concat(*outputs, dim=0), nd.array(SEQ[1:n + 1])).mean()
    loss.backward()
    return np.sqrt(sum(float((p.grad ** 2).sum().asscalar()) for p in params))


@pytest.mark.parametrize("get, init, model", MODELS)
def test_param_grad_norms_match_backward_and_leave_grads_alone(get, init, model):
    params = _random_params(get)
    for p in params:
        p.grad[:] = 7
    got = param_grad_norms(_model(model, init, params), SEQ, [1, 3, 6], ctx=CPU)
    assert all((p.grad.asnumpy() == 7).all() for p in params)
    state_grad_norms(_model(model, init, params), SEQ, ctx=CPU)
    assert all((p.grad.asnumpy() == 7).all() for p in params)
    expected = [_reference_param_norm(model, params, init, n) for n in (1, 3, 6)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bad_lengths_are_value_errors():
    model = _model(rnn, init_rnn_state, get_params(V, HID, CPU))
    with pytest.raises(ValueError, match="at least 2"):
        state_grad_norms(model, [1], ctx=CPU)
    with pytest.raises(ValueError, match="num_steps"):
        param_grad_norms(model, SEQ, [len(SEQ)], ctx=CPU)


@pytest.mark.parametrize("get, init, model", MODELS)
def test_runs_on_the_given_context(get, init, model):
    params = get(V, HID, OTHER_CPU)
    with arrays_created_off(OTHER_CPU) as strays:
        norms = state_grad_norms(_model(model, init, params, OTHER_CPU), SEQ, ctx=OTHER_CPU, clip_theta=1.0)
        assert param_grad_norms(_model(model, init, params, OTHER_CPU), SEQ, [2], ctx=OTHER_CPU).shape == (1,)
    assert norms.shape == (len(SEQ) - 1,) and np.isfinite(norms).all() and strays == []
    assert_all_on(OTHER_CPU, params + [p.grad for p in params])


def test_a_fused_layer_holding_the_scratch_weights_gives_the_same_state_norms():
    """state_grad_norms works on any model: Gluon's fused RNN with the scratch RNN's weights agrees."""
    params = _random_params(get_params)
    W_xh, W_hh, b_h, W_hq, b_q = params
    fused = d2lrnn.build_model("gluon-rnn", vocab_size=V, num_hiddens=HID, ctx=CPU)
    # the operator's order: i2h weights, h2h weights, i2h bias, h2h bias
    flat = nd.concat(W_xh.T.reshape(-1), W_hh.T.reshape(-1), b_h, nd.zeros_like(b_h), dim=0)
    for dst, src in zip(fused.param_arrays(), [flat, W_hq.T, b_q]):
        dst[:] = src
    scratch = _model(rnn, init_rnn_state, params)
    np.testing.assert_allclose(state_grad_norms(fused, SEQ, ctx=CPU, clip_theta=0.5),
                               state_grad_norms(scratch, SEQ, ctx=CPU, clip_theta=0.5), rtol=1e-4)


@pytest.mark.parametrize("name", ["gluon-gru", "gluon-lstm"])
def test_fused_gated_models_have_gradients_through_time(name):
    model = d2lrnn.build_model(name, vocab_size=V, num_hiddens=HID, ctx=CPU)
    randomize(model.param_arrays(), scale=0.8)
    norms = state_grad_norms(model, SEQ, ctx=CPU)
    assert norms.shape == (len(SEQ) - 1,) and np.isfinite(norms).all() and norms.min() > 0
    assert param_grad_norms(model, SEQ, [2, 5], ctx=CPU).min() > 0
