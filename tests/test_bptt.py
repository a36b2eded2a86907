"""Backpropagation through time by hand (bptt.py) equals autograd and finite differences, and training
with it equals training with autograd."""
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

import d2lrnn
import mxnet as mx
from d2lrnn.fast import FastScratchModel
from d2lrnn.training import train_epoch

CPU = mx.cpu()
V, HID, BATCH, STEPS = 7, 5, 3, 6


def _model(cell, seed=0, **kw):
    model = FastScratchModel(cell, vocab_size=V, num_hiddens=HID, ctx=CPU, **kw)
    rng = np.random.RandomState(seed)
    for p in model.params:
        p[:] = nd.array(rng.normal(scale=0.6, size=p.shape))
    return model


def _batch(seed=1):
    rng = np.random.RandomState(seed)
    return nd.array(rng.randint(0, V, size=(BATCH, STEPS))), nd.array(rng.randint(0, V, size=(BATCH, STEPS)))


def _state(model, seed=2):
    rng = np.random.RandomState(seed)
    return tuple(nd.array(rng.normal(size=s.shape)) for s in model.begin_state(batch_size=BATCH, ctx=CPU))


def _autograd(model, X, Y, state):
    with autograd.record():
        logits, new_state = model(X, state)
        loss = gloss.SoftmaxCrossEntropyLoss()(logits, Y.T.reshape((-1,))).mean()
    loss.backward()
    return float(loss.asscalar()), [s.asnumpy() for s in new_state], [p.grad.asnumpy().copy() for p in model.params]


def _by_hand(model, X, Y, state):
    loss, new_state = model.loss_and_grads(X, Y, state)
    return float(loss.asscalar()), [s.asnumpy() for s in new_state], [p.grad.asnumpy().copy() for p in model.params]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("kw", [{}, {"num_layers": 2}, {"num_layers": 3, "embed_size": 4},
                                {"num_layers": 2, "dropout": 0.4}], ids=["1", "2", "3-embed", "2-dropout"])
def test_hand_written_gradients_equal_autograds(cell, kw):
    model = _model(cell, **kw)
    X, Y = _batch()
    state = _state(model)
    mx.random.seed(5)  # the same dropout masks for both
    expected = _autograd(model, X, Y, state)
    mx.random.seed(5)
    got = _by_hand(model, X, Y, state)
    assert got[0] == pytest.approx(expected[0], rel=1e-5)
    for a, b in zip(got[1], expected[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert len(got[2]) == len(model.params)
    for i, (a, b) in enumerate(zip(got[2], expected[2])):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6, err_msg=f"gradient of array {i}")


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_hand_written_gradients_match_finite_differences(cell):
    """Central differences of the loss in float64 (numpy replays the forward) against bptt's gradients."""
    model = _model(cell, seed=3)
    X, Y = _batch(seed=4)
    state = tuple(s * 0 for s in _state(model))
    loss, _ = model.loss_and_grads(X, Y, state)
    grads = [p.grad.asnumpy().astype(np.float64) for p in model.params]
    rng = np.random.RandomState(0)
    for i, p in enumerate(model.params):
        original = p.asnumpy().astype(np.float64)
        for flat in rng.choice(original.size, size=min(4, original.size), replace=False):
            values = []
            for sign in (1, -1):
                w = original.copy()
                w.flat[flat] += sign * 1e-3
                p[:] = nd.array(w)
                values.append(float(model.loss_and_grads(X, Y, state)[0].asscalar()))
            p[:] = nd.array(original)
            fd = (values[0] - values[1]) / 2e-3
            assert abs(fd - grads[i].flat[flat]) <= 2e-3 * max(1.0, abs(fd)), (i, flat, fd, grads[i].flat[flat])


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_training_by_hand_equals_training_with_autograd(tiny, cell):
    corpus, _, _, vocab = tiny
    results = []
    for by_hand in (True, False):
        d2lrnn.set_seed(0)
        model = d2lrnn.build_model(cell, vocab_size=vocab, num_hiddens=16, ctx=CPU)
        model.backward_by_hand = by_hand
        opt = d2lrnn.SGD(model.param_arrays(), lr=1.0)
        ppl = [train_epoch(model, corpus, opt, ctx=CPU, num_steps=6, batch_size=3, clipping_theta=0.5)
               for _ in range(2)]
        results.append((ppl, [p.asnumpy() for p in model.params]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_no_autograd_recording_during_hand_written_training(tiny, monkeypatch):
    corpus, _, _, vocab = tiny
    model = d2lrnn.build_model("gru", vocab_size=vocab, num_hiddens=8, ctx=CPU)
    monkeypatch.setattr(autograd, "record", lambda *a, **k: pytest.fail("autograd was used"))
    train_epoch(model, corpus, d2lrnn.SGD(model.param_arrays(), lr=1.0), ctx=CPU, num_steps=5, batch_size=2,
                clipping_theta=1.0)


def test_the_lecture_loop_runs_the_packages_own_cells_by_hand(tiny):
    """train_and_predict_rnn with d2lrnn's own rnn/gru/lstm trains them batched with the backward pass by
    hand; a student's own function (here a wrapper around the same rnn) keeps autograd: same numbers."""
    from d2lrnn.model import ScratchModel
    from d2lrnn.training import lecture_model

    corpus, char_to_idx, idx_to_char, vocab = tiny
    for cell, get, init in [d2lrnn.scratch_functions(n) for n in ("rnn", "gru", "lstm")]:
        model = lecture_model(cell, get, init, vocab_size=vocab, num_hiddens=8, ctx=CPU)
        assert isinstance(model, FastScratchModel) and model.backward_by_hand

    def own_rnn(inputs, state, params):
        return d2lrnn.rnn(inputs, state, params)

    assert isinstance(lecture_model(own_rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, vocab_size=vocab,
                                    num_hiddens=8, ctx=CPU), ScratchModel)
    histories = []
    for rnn in (d2lrnn.rnn, own_rnn):
        d2lrnn.set_seed(0)
        histories.append(d2lrnn.train_and_predict_rnn(
            rnn, d2lrnn.get_params, d2lrnn.init_rnn_state, 16, vocab, CPU, corpus, idx_to_char, char_to_idx, False,
            3, 6, 10.0, 0.1, 3, 10, 5, [], log=lambda *a: None))
    assert histories[0].perplexity == pytest.approx(histories[1].perplexity, rel=1e-4)
