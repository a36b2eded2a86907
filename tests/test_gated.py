"""GRU and LSTM from scratch: shapes, gate behaviour, and oracles against Gluon's fused layers."""
import numpy as np
import pytest

import d2lrnn  # noqa: F401  (numpy shim before MXNet)
import mxnet as mx
from mxnet import autograd, nd
from mxnet.gluon import rnn as grnn

from d2lrnn.data import to_onehot
from d2lrnn.gated import get_gru_params, get_lstm_params, gru, init_gru_state, init_lstm_state, lstm

V, HID, BATCH, STEPS = 6, 5, 3, 4


@pytest.fixture(autouse=True)
def _seed():
    mx.random.seed(0)
    np.random.seed(0)


def _inputs(ctx=mx.cpu()):
    """A (BATCH, STEPS) index batch as the lecture's list of one-hot arrays."""
    X = nd.array(np.random.randint(0, V, size=(BATCH, STEPS)), ctx=ctx)
    return to_onehot(X, V)


def _randomize(params, scale=0.5):
    """Large random values in place, so every gate is far from its N(0, 0.01) near-linear regime."""
    for p in params:
        p[:] = nd.array(np.random.normal(scale=scale, size=p.shape), ctx=p.context)
    return params


def _random_state(n):
    return tuple(nd.array(np.random.normal(size=(BATCH, HID))) for _ in range(n))


@pytest.mark.parametrize("get, count", [(get_gru_params, 11), (get_lstm_params, 14)])
def test_param_shapes_init_and_grads(get, count):
    params = get(40, 30, mx.cpu())
    assert len(params) == count
    gate_shapes = [(40, 30), (30, 30), (30,)]
    assert [p.shape for p in params] == gate_shapes * ((count - 2) // 3) + [(30, 40), (40,)]
    for i, p in enumerate(params):
        assert p.grad is not None, f"param {i} has no gradient attached"
        values = p.asnumpy()
        if p.ndim == 1:
            assert (values == 0).all(), f"bias {i} not zero"
        else:
            assert 0.007 < values.std() < 0.013 and abs(values.mean()) < 0.003


def test_states_are_tuples_of_zeros():
    (H,) = init_gru_state(BATCH, HID, mx.cpu())
    H2, C = init_lstm_state(BATCH, HID, mx.cpu())
    for s in (H, H2, C):
        assert s.shape == (BATCH, HID) and (s.asnumpy() == 0).all()


@pytest.mark.parametrize("get, init, model, n_state",
                         [(get_gru_params, init_gru_state, gru, 1), (get_lstm_params, init_lstm_state, lstm, 2)])
def test_output_shapes(get, init, model, n_state):
    outputs, state = model(_inputs(), init(BATCH, HID, mx.cpu()), get(V, HID, mx.cpu()))
    assert len(outputs) == STEPS and all(y.shape == (BATCH, V) for y in outputs)
    assert isinstance(state, tuple) and len(state) == n_state
    assert all(s.shape == (BATCH, HID) for s in state)


@pytest.mark.parametrize("get, model", [(get_gru_params, gru), (get_lstm_params, lstm)])
def test_all_zero_model_outputs_zeros_and_keeps_zero_state(get, model):
    params = [p.zeros_like() for p in get(V, HID, mx.cpu())]
    state = tuple(nd.zeros((BATCH, HID)) for _ in range(1 if model is gru else 2))
    outputs, state = model(_inputs(), state, params)
    # gates are all sigmoid(0) = 0.5 and every candidate is tanh(0) = 0: nothing ever moves
    assert all((y.asnumpy() == 0).all() for y in outputs)
    assert all((s.asnumpy() == 0).all() for s in state)


def test_gru_update_gate_open_copies_state():
    params = _randomize(get_gru_params(V, HID, mx.cpu()))
    params[2][:] = 40  # b_z: Z = 1, so H_t = H_{t-1} whatever the input
    state = _random_state(1)
    _, (H,) = gru(_inputs(), state, params)
    np.testing.assert_allclose(H.asnumpy(), state[0].asnumpy(), atol=1e-6)


def test_lstm_forget_open_input_closed_keeps_cell():
    params = _randomize(get_lstm_params(V, HID, mx.cpu()))
    params[2][:] = -40  # b_i: I = 0, nothing is written
    params[5][:] = 40   # b_f: F = 1, nothing is forgotten
    params[8][:] = 40   # b_o: O = 1, H = tanh(C)
    state = _random_state(2)
    _, (H, C) = lstm(_inputs(), state, params)
    np.testing.assert_allclose(C.asnumpy(), state[1].asnumpy(), atol=1e-6)
    np.testing.assert_allclose(H.asnumpy(), np.tanh(state[1].asnumpy()), atol=1e-6)


def _gluon_layer(layer, i2h, h2h, bias):
    """Initialise a fused Gluon layer and copy in (out, in)-shaped weights; hidden-side bias zero."""
    layer.initialize()
    layer.l0_i2h_weight.set_data(nd.array(i2h))
    layer.l0_h2h_weight.set_data(nd.array(h2h))
    layer.l0_i2h_bias.set_data(nd.array(bias))
    layer.l0_h2h_bias.set_data(nd.zeros(bias.shape))
    return layer


def _stack(params, gate_order):
    """Scratch (in, out) gate weights in Gluon's gate order -> Gluon (gates*out, in) blocks."""
    np_params = [p.asnumpy() for p in params]
    i2h = np.concatenate([np_params[3 * g].T for g in gate_order])
    h2h = np.concatenate([np_params[3 * g + 1].T for g in gate_order])
    bias = np.concatenate([np_params[3 * g + 2] for g in gate_order])
    return i2h, h2h, bias


def _compare_with_gluon(model, params, layer, state, inputs):
    """Scratch outputs/state must equal the Gluon layer's (output layer applied to its H sequence)."""
    outputs, new_state = model(inputs, state, params)
    X = nd.stack(*inputs)                                      # (steps, batch, vocab)
    H_seq, g_state = layer(X, [s.expand_dims(0) for s in state])  # H_seq: (steps, batch, hidden)
    W_hq, b_q = params[-2].asnumpy(), params[-1].asnumpy()
    for t, y in enumerate(outputs):
        np.testing.assert_allclose(y.asnumpy(), H_seq[t].asnumpy() @ W_hq + b_q, rtol=1e-5, atol=1e-5)
    for s, g in zip(new_state, g_state):
        np.testing.assert_allclose(s.asnumpy(), g[0].asnumpy(), rtol=1e-5, atol=1e-5)


def test_lstm_equals_gluon_lstm():
    params = _randomize(get_lstm_params(V, HID, mx.cpu()))
    # scratch order i, f, o, c (params 0-2, 3-5, 6-8, 9-11); Gluon's is i, f, c(g), o
    layer = _gluon_layer(grnn.LSTM(HID, input_size=V), *_stack(params, [0, 1, 3, 2]))
    _compare_with_gluon(lstm, params, layer, _random_state(2), _inputs())


def _gru_layer(params):
    # scratch order z, r, h (params 0-2, 3-5, 6-8); Gluon's is r, z, n
    return _gluon_layer(grnn.GRU(HID, input_size=V), *_stack(params, [1, 0, 2]))


def test_gru_equals_gluon_gru():
    # The lecture's candidate tanh(x W_xh + r * (h W_hh) + b_h) is Gluon's (and cuDNN's)
    # tanh(W_in x + b_in + r * (W_hn h + b_hn)) with the whole bias in b_in: the same map.
    params = _randomize(get_gru_params(V, HID, mx.cpu()), scale=1.0)
    _compare_with_gluon(gru, params, _gru_layer(params), _random_state(1), _inputs())


def _original_gru(inputs, state, params):
    """Cho et al.'s 2014 GRU: the reset gate applied before the product, (R * H) W_hh."""
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        Z = nd.sigmoid(nd.dot(X, W_xz) + nd.dot(H, W_hz) + b_z)
        R = nd.sigmoid(nd.dot(X, W_xr) + nd.dot(H, W_hr) + b_r)
        H = Z * H + (1 - Z) * nd.tanh(nd.dot(X, W_xh) + nd.dot(R * H, W_hh) + b_h)
        outputs.append(nd.dot(H, W_hq) + b_q)
    return outputs, (H,)


def test_the_2014_gru_is_a_different_map():
    """Documents the other variant: with a general W_hh the two GRUs disagree."""
    params = _randomize(get_gru_params(V, HID, mx.cpu()), scale=1.0)
    inputs, state = _inputs(), _random_state(1)
    a, _ = gru(inputs, state, params)
    b, _ = _original_gru(inputs, state, params)
    assert np.abs(a[-1].asnumpy() - b[-1].asnumpy()).max() > 1e-2


@pytest.mark.parametrize("model, get, layer_class, order, n_state",
                         [(gru, get_gru_params, grnn.GRU, [1, 0, 2], 1),
                          (lstm, get_lstm_params, grnn.LSTM, [0, 1, 3, 2], 2)])
def test_gradients_equal_gluons(model, get, layer_class, order, n_state):
    """The same loss through the scratch cell and the fused layer: equal weight and bias gradients."""
    params = _randomize(get(V, HID, mx.cpu()), scale=0.7)
    for p in params:
        p.attach_grad()
    layer = _gluon_layer(layer_class(HID, input_size=V), *_stack(params, order))
    inputs, state = _inputs(), _random_state(n_state)
    G = nd.array(np.random.normal(size=(STEPS, BATCH, V)))  # a random linear loss on the outputs
    W_hq, b_q = params[-2].copy(), params[-1].copy()
    with autograd.record():
        outputs, _ = model(inputs, state, params)
        loss = sum((y * G[t]).sum() for t, y in enumerate(outputs))
    loss.backward()
    with autograd.record():
        H_seq, _ = layer(nd.stack(*inputs), [s.expand_dims(0) for s in state])  # (steps, batch, hidden)
        loss = (nd.dot(H_seq, W_hq) + b_q) * G
        loss = loss.sum()
    loss.backward()
    i2h, h2h, bias = _stack([p.grad for p in params], order)
    np.testing.assert_allclose(layer.l0_i2h_weight.grad().asnumpy(), i2h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.l0_h2h_weight.grad().asnumpy(), h2h, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.l0_i2h_bias.grad().asnumpy(), bias, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("get, init, model",
                         [(get_gru_params, init_gru_state, gru), (get_lstm_params, init_lstm_state, lstm)])
def test_everything_lives_on_the_given_context(get, init, model):
    ctx = mx.cpu(1)
    params = get(V, HID, ctx)
    state = init(BATCH, HID, ctx)
    outputs, new_state = model(_inputs(ctx), state, params)
    arrays = params + [p.grad for p in params] + list(state) + outputs + list(new_state)
    assert all(a.context == ctx for a in arrays), [a.context for a in arrays]
