"""The registry's *-bptt models (d2lrnn.cells.batched.BatchedModel): the batched forward equals the
lecture's readable cells (one layer, stacked layers, an embedding), the backward pass written by hand
equals autograd and finite differences, and training with it equals training the lecture's cell."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

import d2lrnn
from d2lrnn.cells import CELLS
from d2lrnn.cells.batched import BatchedModel
from d2lrnn.training import TrainOptions, train_epoch

from helpers import CPU, numpy_arrays, random_state, random_tokens, randomize

V, HID, BATCH, STEPS = 7, 5, 3, 6


def _random_batched(cell, seed=0, **options):
    """A BatchedModel with random weights."""
    model = BatchedModel(cell, vocab_size=V, num_hiddens=HID, ctx=CPU, **options)
    randomize(model.params, seed=seed, scale=0.6)
    return model


def _lecture_stack(cell, params, X, state, num_layers, embed_size):
    """The same network written with the lecture's step functions: each layer is the readable cell
    whose output layer is the identity, so its outputs are its hidden states, fed to the next layer."""
    spec = CELLS[cell]
    arrays = list(params)
    if embed_size:
        E = arrays.pop(0)
        inputs = [nd.Embedding(x, E, input_dim=V, output_dim=embed_size) for x in X.T]  # steps x (batch, E)
    else:
        inputs = d2lrnn.to_onehot(X, V)
    identity = [nd.array(np.eye(HID)), nd.zeros(HID)]
    per_layer, new_state = 3 * spec.gates, []  # [W_x, W_h, b] per gate
    for layer in range(num_layers):
        layer_state = state[layer * spec.state_arrays:(layer + 1) * spec.state_arrays]
        layer_params = arrays[layer * per_layer:(layer + 1) * per_layer]
        inputs, s = spec.step(inputs, layer_state, layer_params + identity)
        new_state += list(s)
    W_hq, b_q = arrays[-2:]
    return nd.concat(*[nd.dot(H, W_hq) + b_q for H in inputs], dim=0), new_state


def _autograd_loss(forward, params, X, Y, state, state_term=False):
    """(loss, new state, gradients) of the mean cross-entropy (plus |state|^2 if state_term) by autograd."""
    with autograd.record():
        logits, new_state = forward(X, state)
        loss = gloss.SoftmaxCrossEntropyLoss()(logits, Y.T.reshape((-1,))).mean()
        if state_term:  # makes the final state's gradient matter too
            loss = loss + sum((s ** 2).sum() for s in new_state)
    loss.backward()
    return float(loss.asscalar()), numpy_arrays(new_state), numpy_arrays(p.grad for p in params)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("num_layers, embed_size", [(1, 0), (2, 0), (3, 4)])
def test_the_batched_forward_equals_the_lecture_cells(cell, num_layers, embed_size):
    """Logits, states and (through autograd) every gradient."""
    model = _random_batched(cell, num_layers=num_layers, embed_size=embed_size)
    params = model.param_arrays()
    X, Y = random_tokens(V, (BATCH, STEPS)), random_tokens(V, (BATCH, STEPS), seed=3)
    state = random_state(model, BATCH)
    batched = _autograd_loss(model, params, X, Y, state, state_term=True)
    if num_layers == 1 and not embed_size:  # one layer: the lecture's own function and parameter list
        spec = CELLS[cell]
        reference = d2lrnn.ScratchModel(spec.step, None, spec.init_state, vocab_size=V, num_hiddens=HID,
                                        ctx=CPU, params=params)
    else:
        reference = lambda X, s: _lecture_stack(cell, params, X, s, num_layers, embed_size)  # noqa: E731
    readable = _autograd_loss(reference, params, X, Y, state, state_term=True)
    assert batched[0] == pytest.approx(readable[0], rel=1e-5)
    for a, b in zip(batched[1], readable[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert len(batched[2]) == len(params)
    for i, (a, b) in enumerate(zip(batched[2], readable[2])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"gradient of array {i}")


@pytest.mark.parametrize("cell", list(CELLS))
def test_one_layer_draws_the_lecture_parameters(cell):
    mx.random.seed(4)
    lecture = CELLS[cell].get_params(V, HID, CPU)
    mx.random.seed(4)
    batched = BatchedModel(cell, vocab_size=V, num_hiddens=HID, ctx=CPU).param_arrays()
    assert [p.shape for p in batched] == [p.shape for p in lecture]
    for a, b in zip(batched, lecture):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("options", [{}, {"num_layers": 2}, {"num_layers": 3, "embed_size": 4},
                                     {"num_layers": 2, "dropout": 0.4}],
                         ids=["1", "2", "3-embed", "2-dropout"])
def test_hand_written_gradients_equal_autograds(cell, options):
    model = _random_batched(cell, **options)
    X, Y = random_tokens(V, (BATCH, STEPS)), random_tokens(V, (BATCH, STEPS), seed=3)
    state = random_state(model, BATCH)
    mx.random.seed(5)  # the same dropout masks for both
    expected = _autograd_loss(model, model.params, X, Y, state)
    mx.random.seed(5)
    loss, new_state = model.loss_and_grads(X, Y, state)
    assert float(loss.asscalar()) == pytest.approx(expected[0], rel=1e-5)
    for a, b in zip(numpy_arrays(new_state), expected[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for i, (a, b) in enumerate(zip(numpy_arrays(p.grad for p in model.params), expected[2])):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6, err_msg=f"gradient of array {i}")


@pytest.mark.parametrize("cell", list(CELLS))
def test_hand_written_gradients_match_finite_differences(cell):
    """Central differences of the loss against loss_and_grads's gradients, at 4 entries of every array."""
    model = _random_batched(cell, seed=3)
    X, Y = random_tokens(V, (BATCH, STEPS), seed=4), random_tokens(V, (BATCH, STEPS), seed=5)
    state = model.begin_state(batch_size=BATCH, ctx=CPU)
    model.loss_and_grads(X, Y, state)
    grads = numpy_arrays(p.grad for p in model.params)
    rng = np.random.RandomState(0)
    for i, p in enumerate(model.params):
        original = p.asnumpy()
        for flat in rng.choice(original.size, size=min(4, original.size), replace=False):
            values = []
            for sign in (1, -1):
                w = original.copy()
                w.flat[flat] += sign * 1e-3
                p[:] = nd.array(w)
                values.append(float(model.loss_and_grads(X, Y, state)[0].asscalar()))
            p[:] = nd.array(original)
            fd = (values[0] - values[1]) / 2e-3
            by_hand = grads[i].flat[flat]
            assert abs(fd - by_hand) <= 2e-3 * max(1.0, abs(fd)), (i, flat, fd, by_hand)


@pytest.mark.parametrize("cell", list(CELLS))
def test_training_by_hand_equals_training_the_lecture_cell_with_autograd(tiny, cell):
    """Two epochs of the registry's `cell-bptt` and of `cell` (the lecture's step function with autograd)
    from the same initial weights: the same perplexities and weights."""
    corpus, _, _, vocab = tiny
    corpus = corpus[:200]  # 10 minibatches an epoch
    options = TrainOptions(num_steps=6, batch_size=3, lr=1.0, clipping_theta=0.5)
    results = []
    for name in (f"{cell}-bptt", cell):
        d2lrnn.set_seed(0)
        model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=16, ctx=CPU)
        opt = d2lrnn.SGD(model.param_arrays(), lr=options.lr)
        ppl = [train_epoch(model, corpus, opt, options, ctx=CPU) for _ in range(2)]
        results.append((ppl, numpy_arrays(model.param_arrays())))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_no_autograd_recording_during_hand_written_training(tiny, monkeypatch):
    corpus, _, _, vocab = tiny
    model = d2lrnn.build_model("gru-bptt", vocab_size=vocab, num_hiddens=8, ctx=CPU, num_layers=2)
    monkeypatch.setattr(autograd, "record", lambda *a, **k: pytest.fail("autograd was used"))
    train_epoch(model, corpus[:200], d2lrnn.SGD(model.param_arrays(), lr=1.0),
                TrainOptions(num_steps=5, batch_size=2, clipping_theta=1.0), ctx=CPU)


@pytest.mark.parametrize("name", ["lstm-bptt", "gluon-lstm"])
def test_dropout_acts_between_layers_only_while_training(name):
    model = d2lrnn.build_model(name, vocab_size=V, num_hiddens=HID, ctx=CPU, num_layers=2, dropout=0.5)
    randomize(model.param_arrays(), scale=0.6)
    X = random_tokens(V, (BATCH, STEPS))
    state = model.begin_state(batch_size=BATCH, ctx=CPU)
    predict = [model(X, state)[0].asnumpy() for _ in range(2)]
    np.testing.assert_array_equal(predict[0], predict[1])  # no dropout outside training
    with autograd.record():
        train = [model(X, state)[0].asnumpy() for _ in range(2)]
    assert np.abs(train[0] - train[1]).max() > 1e-3 and np.abs(train[0] - predict[0]).max() > 1e-3
