"""The registry's batched models equal the lecture's readable functions: outputs, states and gradients,
for one layer, several layers, with an embedding; dropout acts between layers only while training."""
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss
from mxnet.gluon import rnn as grnn

import d2lrnn
import mxnet as mx
from d2lrnn.fast import CELLS, FastScratchModel
from d2lrnn.model import ScratchModel

CPU = mx.cpu()
V, HID, BATCH, STEPS = 7, 5, 3, 6
LECTURE = {cell: d2lrnn.scratch_functions(cell) for cell in CELLS}  # cell -> (step, get_params, init_state)


def _randomize(arrays, seed=0, scale=0.6):
    rng = np.random.RandomState(seed)
    for a in arrays:
        a[:] = nd.array(rng.normal(scale=scale, size=a.shape))
    return arrays


def _batch(seed=1):
    rng = np.random.RandomState(seed)
    return nd.array(rng.randint(0, V, size=(BATCH, STEPS))), nd.array(rng.randint(0, V, size=STEPS * BATCH))


def _random_state(model, seed=2):
    return tuple(_randomize(list(model.begin_state(batch_size=BATCH, ctx=CPU)), seed=seed, scale=1.0))


def _lecture_stack(cell, params, X, state, num_layers, embed_size):
    """The same network written with the lecture's functions: each layer is the readable cell whose
    output layer is the identity, so its outputs are its hidden states, fed to the next layer."""
    step, _, _ = LECTURE[cell]
    _, _, gates, n_state = CELLS[cell]
    per_gate = 3  # [W_x, W_h, b] per gate block
    arrays = list(params)
    if embed_size:
        E = arrays.pop(0)
        inputs = [nd.Embedding(x, E, input_dim=V, output_dim=embed_size) for x in X.T]  # steps x (batch, embed)
    else:
        inputs = d2lrnn.to_onehot(X, V)
    identity = [nd.array(np.eye(HID)), nd.zeros(HID)]
    new_state = []
    for layer in range(num_layers):
        layer_params = arrays[layer * per_gate * gates:(layer + 1) * per_gate * gates]
        inputs, s = step(inputs, state[layer * n_state:(layer + 1) * n_state], layer_params + identity)
        new_state += list(s)
    W_hq, b_q = arrays[-2:]
    return nd.concat(*[nd.dot(H, W_hq) + b_q for H in inputs], dim=0), new_state


def _loss_and_grads(forward, params, X, y, state):
    with autograd.record():
        logits, new_state = forward(X, state)
        loss = gloss.SoftmaxCrossEntropyLoss()(logits, y).mean() + sum((s ** 2).sum() for s in new_state)
    loss.backward()
    return logits.asnumpy(), [s.asnumpy() for s in new_state], [p.grad.asnumpy() for p in params]


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("num_layers, embed_size", [(1, 0), (2, 0), (3, 4)])
def test_fast_cells_equal_the_lecture_functions(cell, num_layers, embed_size):
    model = FastScratchModel(cell, vocab_size=V, num_hiddens=HID, ctx=CPU, num_layers=num_layers,
                             embed_size=embed_size)
    params = _randomize(model.param_arrays())
    X, y = _batch()
    state = _random_state(model)
    fast = _loss_and_grads(model, params, X, y, state)
    if num_layers == 1 and not embed_size:  # one layer: the lecture's own function and parameters
        step, _, init_state = LECTURE[cell]
        reference = ScratchModel(step, None, init_state, vocab_size=V, num_hiddens=HID, ctx=CPU, params=params)
    else:
        reference = lambda X, s: _lecture_stack(cell, params, X, s, num_layers, embed_size)  # noqa: E731
    slow = _loss_and_grads(reference, params, X, y, state)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-4, atol=1e-5)
    for a, b in zip(fast[1], slow[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert len(fast[2]) == len(params)
    for i, (a, b) in enumerate(zip(fast[2], slow[2])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"gradient of array {i}")


@pytest.mark.parametrize("cell", list(CELLS))
def test_one_layer_draws_the_lecture_parameters(cell):
    _, get, _ = LECTURE[cell]
    mx.random.seed(4)
    lecture = get(V, HID, CPU)
    mx.random.seed(4)
    fast = FastScratchModel(cell, vocab_size=V, num_hiddens=HID, ctx=CPU).param_arrays()
    assert [p.shape for p in fast] == [p.shape for p in lecture]
    for a, b in zip(fast, lecture):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


@pytest.mark.parametrize("name", ["lstm", "gluon-lstm"])
def test_dropout_acts_between_layers_only_while_training(name):
    model = d2lrnn.build_model(name, vocab_size=V, num_hiddens=HID, ctx=CPU, num_layers=2, dropout=0.5)
    _randomize(model.param_arrays())
    X, _ = _batch()
    state = model.begin_state(batch_size=BATCH, ctx=CPU)
    predict = [model(X, state)[0].asnumpy() for _ in range(2)]
    np.testing.assert_array_equal(predict[0], predict[1])  # no dropout outside training
    with autograd.record():
        train = [model(X, state)[0].asnumpy() for _ in range(2)]
    assert np.abs(train[0] - train[1]).max() > 1e-3 and np.abs(train[0] - predict[0]).max() > 1e-3


def test_gluons_own_two_layer_dropout_is_ignored_on_this_cpu():
    """Why LayerStack exists: MXNet 1.9.1's oneDNN kernel drops the dropout argument of a fused
    multi-layer layer (if this starts failing, MXNet learnt to apply it)."""
    outputs = []
    for p in (0.0, 0.5):
        layer = grnn.LSTM(HID, num_layers=2, dropout=p, input_size=V)
        layer.initialize(mx.init.Normal(0.5))
        for param in layer.collect_params().values():
            _randomize([param.data()], seed=3)
        with autograd.record():  # training mode, where dropout would act
            outputs.append(layer(nd.ones((STEPS, BATCH, V)), layer.begin_state(BATCH))[0].asnumpy())
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("name", list(d2lrnn.MODELS))
def test_deep_embedded_models_train_and_save(tmp_path, tiny, name):
    corpus, char_to_idx, idx_to_char, vocab = tiny
    model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=16, ctx=CPU, num_layers=2, embed_size=8,
                               dropout=0.1)
    h = d2lrnn.train(model, corpus, ctx=CPU, num_epochs=3, num_steps=8, batch_size=4, lr=0.01, optimizer="adam",
                     clipping_theta=1.0)
    assert h.perplexity[-1] < h.perplexity[0]
    d2lrnn.save_checkpoint(tmp_path / "ckpt", model, idx_to_char)
    back = d2lrnn.load_checkpoint(tmp_path / "ckpt", CPU)
    assert back.config["layers"] == 2 and back.config["embed"] == 8 and back.config["dropout"] == 0.1
    X = nd.array([corpus[:10]])
    np.testing.assert_allclose(back.model(X, back.model.begin_state(batch_size=1, ctx=CPU))[0].asnumpy(),
                               model(X, model.begin_state(batch_size=1, ctx=CPU))[0].asnumpy(), rtol=1e-5)


@pytest.mark.parametrize("kw, match", [({"num_layers": 0}, "num_layers"), ({"embed_size": -1}, "embed_size"),
                                       ({"dropout": 1.0}, "dropout"), ({"num_hiddens": 2.5}, "num_hiddens")])
def test_bad_model_options_are_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        d2lrnn.build_model("lstm", **{"vocab_size": V, "num_hiddens": HID, "ctx": CPU, **kw})


@pytest.mark.parametrize("cell, layer_class", [("rnn", grnn.RNN), ("gru", grnn.GRU), ("lstm", grnn.LSTM)])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_the_flat_fused_layer_equals_gluons_layer(cell, layer_class, num_layers):
    """FusedLayer runs the same operator as gluon.rnn on one flat parameter: same outputs, same gradients."""
    from d2lrnn.model import FusedLayer

    kw = {"activation": "tanh"} if cell == "rnn" else {}
    gluon_layer = layer_class(HID, num_layers=num_layers, input_size=V, **kw)
    gluon_layer.initialize(mx.init.Normal(0.5))
    fused = FusedLayer(cell, HID, V, num_layers)
    fused.initialize()
    fused.copy_from(gluon_layer)
    X = nd.array(np.random.RandomState(0).normal(size=(STEPS, BATCH, V)))
    G = nd.array(np.random.RandomState(1).normal(size=(STEPS, BATCH, HID)))
    results = []
    for layer in (gluon_layer, fused):
        state = [s + 0.3 for s in layer.begin_state(batch_size=BATCH)]
        with autograd.record():
            Y, new_state = layer(X, state)
            loss = (Y * G).sum() + sum((s ** 2).sum() for s in new_state)
        loss.backward()
        results.append((Y.asnumpy(), [s.asnumpy() for s in new_state]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    order = [f"l{k}_{g}_{t}" for t in ("weight", "bias") for k in range(num_layers) for g in ("i2h", "h2h")]
    expected = np.concatenate([getattr(gluon_layer, name).grad().asnumpy().ravel() for name in order])
    np.testing.assert_allclose(fused.flat.grad().asnumpy(), expected, rtol=1e-4, atol=1e-5)
