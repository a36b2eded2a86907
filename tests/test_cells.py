"""The lecture-form cells (d2lrnn.cells: rnn, gru, lstm with their get_params and init_*_state): shapes,
the lecture's initialisation, gate behaviour, the lecture's literal notebook code and Gluon's fused
layers as oracles (outputs, states and gradients), and the device they are given."""
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss
from mxnet.gluon import rnn as grnn

import d2lrnn
from d2lrnn.cells import CELLS

from helpers import CPU, OTHER_CPU, arrays_created_off, assert_all_on, random_tokens, randomize
from helpers import rnn as lecture_rnn

V, HID, BATCH, STEPS = 6, 5, 3, 4
# Gluon's layer for each cell, and where each of its gate blocks sits in the lecture's parameter list
# (the lecture orders the GRU z, r, h and the LSTM i, f, o, c; Gluon r, z, n and i, f, c, o)
GLUON = {"rnn": (grnn.RNN, [0]), "gru": (grnn.GRU, [1, 0, 2]), "lstm": (grnn.LSTM, [0, 1, 3, 2])}


def _inputs(ctx=CPU, seed=1):
    """A (BATCH, STEPS) batch of tokens as the lecture's list of one-hot arrays."""
    return d2lrnn.to_onehot(random_tokens(V, (BATCH, STEPS), seed=seed, ctx=ctx), V)


def _state(cell, seed=2):
    """A random state for the cell: (H,) or (H, C)."""
    return tuple(randomize(list(CELLS[cell].init_state(BATCH, HID, CPU)), seed=seed, scale=1.0))


@pytest.mark.parametrize("cell", list(CELLS))
def test_params_have_the_lectures_shapes_initialisation_and_gradients(cell):
    spec = CELLS[cell]
    params = spec.get_params(40, 30, CPU)
    assert len(params) == 3 * spec.gates + 2
    assert [p.shape for p in params] == [(40, 30), (30, 30), (30,)] * spec.gates + [(30, 40), (40,)]
    for i, p in enumerate(params):
        assert p.grad is not None, f"param {i} has no gradient attached"
        values = p.asnumpy()
        if p.ndim == 1:
            assert (values == 0).all(), f"bias {i} not zero"
        else:  # N(0, 0.01)
            assert 0.009 < values.std() < 0.011 and abs(values.mean()) < 0.002, (i, values.std())


@pytest.mark.parametrize("cell", list(CELLS))
def test_state_is_a_tuple_of_zeros(cell):
    state = CELLS[cell].init_state(BATCH, HID, CPU)
    assert isinstance(state, tuple) and len(state) == CELLS[cell].state_arrays
    assert all(s.shape == (BATCH, HID) and (s.asnumpy() == 0).all() for s in state)


@pytest.mark.parametrize("cell", list(CELLS))
def test_outputs_are_a_list_of_steps_and_the_state_a_tuple(cell):
    spec = CELLS[cell]
    outputs, state = spec.step(_inputs(), spec.init_state(BATCH, HID, CPU), spec.get_params(V, HID, CPU))
    assert isinstance(outputs, list) and len(outputs) == STEPS and all(y.shape == (BATCH, V) for y in outputs)
    assert isinstance(state, tuple) and len(state) == spec.state_arrays
    assert all(s.shape == (BATCH, HID) for s in state)


@pytest.mark.parametrize("cell", list(CELLS))
def test_an_all_zero_cell_outputs_zeros_and_keeps_a_zero_state(cell):
    spec = CELLS[cell]
    params = [p.zeros_like() for p in spec.get_params(V, HID, CPU)]
    # tanh(0) = 0 for every candidate; each gate is sigmoid(0) = 1/2 of zero: nothing ever moves
    outputs, state = spec.step(_inputs(), spec.init_state(BATCH, HID, CPU), params)
    assert all((y.asnumpy() == 0).all() for y in outputs) and all((s.asnumpy() == 0).all() for s in state)


def test_gru_update_gate_open_copies_the_state():
    params = randomize(d2lrnn.get_gru_params(V, HID, CPU))
    params[2][:] = 40  # b_z: Z = 1, so H_t = H_{t-1} whatever the input
    state = _state("gru")
    _, (H,) = d2lrnn.gru(_inputs(), state, params)
    np.testing.assert_allclose(H.asnumpy(), state[0].asnumpy(), atol=1e-6)


def test_lstm_forget_open_input_closed_keeps_the_cell():
    params = randomize(d2lrnn.get_lstm_params(V, HID, CPU))
    params[2][:] = -40  # b_i: I = 0, nothing is written
    params[5][:] = 40   # b_f: F = 1, nothing is forgotten
    params[8][:] = 40   # b_o: O = 1, H = tanh(C)
    state = _state("lstm")
    _, (H, C) = d2lrnn.lstm(_inputs(), state, params)
    np.testing.assert_allclose(C.asnumpy(), state[1].asnumpy(), atol=1e-6)
    np.testing.assert_allclose(H.asnumpy(), np.tanh(state[1].asnumpy()), atol=1e-6)


# --- d2lrnn's rnn (input and output layers batched over time) against the notebook's own ---------------

@pytest.mark.parametrize("batch, steps", [(4, 7), (1, 1), (3, 1), (2, 35)])
def test_rnn_equals_the_lecture_notebooks_rnn(batch, steps):
    vocab, hidden = 11, 16
    params = randomize(d2lrnn.get_params(vocab, hidden, CPU), scale=0.3)  # non-zero biases too
    H0 = randomize([nd.zeros((batch, hidden))], seed=2, scale=1.0)[0]
    inputs = d2lrnn.to_onehot(random_tokens(vocab, (batch, steps)), vocab)
    fast, (H_fast,) = d2lrnn.rnn(inputs, (H0,), params)
    slow, (H_slow,) = lecture_rnn(inputs, (H0,), params)
    assert isinstance(fast, list) and len(fast) == steps
    for a, b in zip(fast, slow):
        assert a.shape == (batch, vocab)
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(H_fast.asnumpy(), H_slow.asnumpy(), rtol=1e-5, atol=1e-5)


def test_rnn_gradients_equal_the_lecture_notebooks():
    """Autograd through d2lrnn's rnn gives the notebook's gradients (parameters and initial state)."""
    vocab, hidden, batch, steps = 9, 12, 3, 6
    inputs = d2lrnn.to_onehot(random_tokens(vocab, (batch, steps)), vocab)
    y = random_tokens(vocab, (steps * batch,), seed=3)
    grads = []
    for cell in (d2lrnn.rnn, lecture_rnn):
        params = randomize(d2lrnn.get_params(vocab, hidden, CPU), scale=0.3)
        H0 = randomize([nd.zeros((batch, hidden))], seed=4, scale=1.0)[0]
        H0.attach_grad()
        with autograd.record():
            outputs, (H,) = cell(inputs, (H0,), params)
            loss = gloss.SoftmaxCrossEntropyLoss()(nd.concat(*outputs, dim=0), y).mean() + (H ** 2).sum()
        loss.backward()
        grads.append([p.grad.asnumpy() for p in params] + [H0.grad.asnumpy()])
    for name, a, b in zip(["W_xh", "W_hh", "b_h", "W_hq", "b_q", "H0"], *grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


# --- every cell against Gluon's fused layer ---------------------------------------------------------

def _gluon_blocks(arrays, order):
    """The lecture's (in, out) gate arrays in Gluon's gate order -> Gluon's (gates * out, in) blocks."""
    a = [x.asnumpy() for x in arrays]
    return (np.concatenate([a[3 * g].T for g in order]), np.concatenate([a[3 * g + 1].T for g in order]),
            np.concatenate([a[3 * g + 2] for g in order]))


def _gluon_layer(cell, params):
    """A fused Gluon layer holding the cell's weights; its hidden-side bias is zero (the lecture has one)."""
    layer_class, order = GLUON[cell]
    layer = layer_class(HID, input_size=V, **({"activation": "tanh"} if cell == "rnn" else {}))
    layer.initialize()
    i2h, h2h, bias = _gluon_blocks(params, order)
    for name, value in (("i2h_weight", i2h), ("h2h_weight", h2h), ("i2h_bias", bias),
                        ("h2h_bias", np.zeros_like(bias))):
        getattr(layer, f"l0_{name}").set_data(nd.array(value))
    return layer


@pytest.mark.parametrize("cell", list(CELLS))
def test_each_cell_equals_gluons_fused_layer(cell):
    """Outputs, final state and the gates' gradients of a random linear loss on the outputs.

    For the GRU this pins the variant: the lecture's candidate tanh(X W_xh + R * (H W_hh) + b_h) is
    Gluon's (and cuDNN's) tanh(W_in x + b_in + r * (W_hn h + b_hn)) with the whole bias in b_in."""
    spec = CELLS[cell]
    params = randomize(spec.get_params(V, HID, CPU), scale=0.7)
    layer = _gluon_layer(cell, params)
    inputs, state = _inputs(), _state(cell)
    G = nd.array(np.random.RandomState(3).normal(size=(STEPS, BATCH, V)))  # the loss: sum of G * outputs
    with autograd.record():
        outputs, new_state = spec.step(inputs, state, params)
        loss = sum((y * G[t]).sum() for t, y in enumerate(outputs))
    loss.backward()
    W_hq, b_q = params[-2].copy(), params[-1].copy()  # copies: the second loss must not touch params' grads
    with autograd.record():
        H_seq, gluon_state = layer(nd.stack(*inputs), [s.expand_dims(0) for s in state])  # (steps, batch, n)
        gluon_loss = ((nd.dot(H_seq, W_hq) + b_q) * G).sum()
    gluon_loss.backward()
    for t, y in enumerate(outputs):
        expected = nd.dot(H_seq[t], W_hq) + b_q
        np.testing.assert_allclose(y.asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-5)
    for s, g in zip(new_state, gluon_state):
        np.testing.assert_allclose(s.asnumpy(), g[0].asnumpy(), rtol=1e-5, atol=1e-5)
    for name, expected in zip(("i2h_weight", "h2h_weight", "i2h_bias"),
                              _gluon_blocks([p.grad for p in params], GLUON[cell][1])):
        got = getattr(layer, f"l0_{name}").grad().asnumpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=name)


def _gru_2014(inputs, state, params):
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
    params = randomize(d2lrnn.get_gru_params(V, HID, CPU), scale=1.0)
    inputs, state = _inputs(), _state("gru")
    a, _ = d2lrnn.gru(inputs, state, params)
    b, _ = _gru_2014(inputs, state, params)
    assert np.abs(a[-1].asnumpy() - b[-1].asnumpy()).max() > 1e-2


@pytest.mark.parametrize("cell", list(CELLS))
def test_every_array_lives_on_the_given_context(cell):
    spec = CELLS[cell]
    with arrays_created_off(OTHER_CPU) as strays:
        params = spec.get_params(V, HID, OTHER_CPU)
        state = spec.init_state(BATCH, HID, OTHER_CPU)
        with autograd.record():
            outputs, new_state = spec.step(_inputs(OTHER_CPU), state, params)
            loss = sum(y.sum() for y in outputs)
        loss.backward()
    assert strays == []
    assert_all_on(OTHER_CPU, params + [p.grad for p in params] + list(state) + outputs + list(new_state))
