"""Models: the shared interface, the Gluon models against the scratch cell, the fused layer against Gluon's,
and the device: everything a model touches stays on the context it is given."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import rnn as grnn

import d2lrnn
from d2lrnn import training, utils
from d2lrnn.cells import batched
from d2lrnn.model import FusedLayer, call_get_params
from d2lrnn.training import TrainOptions

from helpers import (
    CPU,
    OTHER_CPU,
    arrays_created_off,
    assert_all_on,
    notebook_get_params,
    random_tokens,
    randomize,
)

V, HID, BATCH, STEPS = 7, 5, 3, 6
QUIET = {"log": lambda *a: None}


def test_every_model_has_the_same_interface_and_time_major_logits(tiny):
    """logits are (steps * batch, vocab), time-major: row t * batch + b is step t of sequence b."""
    _, _, _, vocab = tiny
    X = random_tokens(vocab, (3, 4))
    for name in d2lrnn.MODELS:
        model = d2lrnn.build_model(name, vocab_size=vocab, num_hiddens=6, ctx=CPU)
        logits, state = model(X, model.begin_state(batch_size=3, ctx=CPU))
        assert logits.shape == (12, vocab) and len(state) == (2 if "lstm" in name else 1), name
        first, _ = model(X[:, :1], model.begin_state(batch_size=3, ctx=CPU))
        np.testing.assert_allclose(logits[:3].asnumpy(), first.asnumpy(), rtol=1e-5, atol=1e-6)
        assert model.config == {"model": name, "hidden": 6, "layers": 1, "embed": 0, "dropout": 0.0}


def test_get_params_may_be_the_lectures_closure_or_take_sizes():
    sized = call_get_params(d2lrnn.get_params, V, HID, CPU)
    closure = call_get_params(notebook_get_params(V, HID, CPU), V, HID, CPU)
    lecture_shapes = [(V, HID), (HID, HID), (HID,), (HID, V), (V,)]
    assert [p.shape for p in sized] == [p.shape for p in closure] == lecture_shapes


def _gluon_rnn_holding(params):
    """An RNNModel around Gluon's fused RNN layer holding the scratch RNN's weights."""
    W_xh, W_hh, b_h, W_hq, b_q = params
    model = d2lrnn.RNNModel(grnn.RNN(HID, activation="tanh", input_size=V), V)
    model.initialize()
    model(nd.zeros((1, 1)), model.begin_state(batch_size=1))  # settle the dense layer's input size
    for name, value in (("l0_i2h_weight", W_xh.T), ("l0_h2h_weight", W_hh.T), ("l0_i2h_bias", b_h),
                        ("l0_h2h_bias", nd.zeros_like(b_h))):
        getattr(model.rnn, name).set_data(value)
    model.dense.weight.set_data(W_hq.T)
    model.dense.bias.set_data(b_q)
    return model


def test_rnn_model_equals_the_scratch_rnn():
    params = randomize(d2lrnn.get_params(V, HID, CPU))
    model = _gluon_rnn_holding(params)
    X = random_tokens(V, (BATCH, STEPS))
    H0 = randomize([nd.zeros((BATCH, HID))], seed=3, scale=1.0)[0]
    out, state = model(X, [H0.expand_dims(0)])
    outputs, (H,) = d2lrnn.rnn(d2lrnn.to_onehot(X, V), (H0,), params)
    assert out.shape == (STEPS * BATCH, V)
    np.testing.assert_allclose(out.asnumpy(), nd.concat(*outputs, dim=0).asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state[0][0].asnumpy(), H.asnumpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell, layer_class", [("rnn", grnn.RNN), ("gru", grnn.GRU), ("lstm", grnn.LSTM)])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_the_flat_fused_layer_equals_gluons_layer(cell, layer_class, num_layers):
    """FusedLayer runs the same operator as gluon.rnn on one flat parameter: same outputs, same gradients."""
    gluon_layer = layer_class(HID, num_layers=num_layers, input_size=V,
                              **({"activation": "tanh"} if cell == "rnn" else {}))
    gluon_layer.initialize(mx.init.Normal(0.5))
    fused = FusedLayer(cell, HID, V, num_layers)
    fused.initialize()
    fused.copy_from(gluon_layer)
    X = randomize([nd.zeros((STEPS, BATCH, V))], seed=0, scale=1.0)[0]
    G = randomize([nd.zeros((STEPS, BATCH, HID))], seed=1, scale=1.0)[0]
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


def test_gluons_own_two_layer_dropout_is_ignored_on_this_cpu():
    """Why LayerStack exists: MXNet 1.9.1's oneDNN kernel drops the dropout argument of a fused
    multi-layer layer (if this starts failing, MXNet learnt to apply it)."""
    outputs = []
    for p in (0.0, 0.5):
        layer = grnn.LSTM(HID, num_layers=2, dropout=p, input_size=V)
        layer.initialize()
        randomize([param.data() for param in layer.collect_params().values()], seed=3)
        with autograd.record():  # training mode, where dropout would act
            outputs.append(layer(nd.ones((STEPS, BATCH, V)), layer.begin_state(BATCH))[0].asnumpy())
    np.testing.assert_array_equal(outputs[0], outputs[1])


# --- devices ---------------------------------------------------------------------------------------

def _use_everything(model, tiny, folder, ctx):
    """What the job and the notebooks do with a model: train (random windows with Adam, sequential with
    SGD) with held-out text and samples, sample, gradients through time, save, load and run it."""
    corpus, char_to_idx, idx_to_char, _ = tiny
    preview = d2lrnn.Preview(["the"], idx_to_char, char_to_idx, period=1, length=3)
    for is_random, optimizer in ((True, "adam"), (False, "sgd")):
        options = TrainOptions(num_epochs=1, num_steps=5, batch_size=2, lr=1.0, clipping_theta=0.1,
                               is_random_iter=is_random, optimizer=optimizer)
        d2lrnn.train(model, corpus[:120], options, ctx=ctx, val_corpus=corpus[:60], preview=preview, **QUIET)
    d2lrnn.generate(model, "the", 3, ctx=ctx, idx_to_char=idx_to_char, char_to_idx=char_to_idx,
                    temperature=1.0, seed=0)
    d2lrnn.state_grad_norms(model, corpus[:6], ctx=ctx, clip_theta=1.0)
    d2lrnn.param_grad_norms(model, corpus[:6], [3], ctx=ctx)
    d2lrnn.save_checkpoint(folder, model, idx_to_char, optimizer=d2lrnn.Adam(model.param_arrays(), lr=0.1))
    back = d2lrnn.load_checkpoint(folder, ctx)
    d2lrnn.Adam(back.model.param_arrays(), lr=0.1).load_state_arrays(back.optimizer_arrays)
    back.model(nd.array([corpus[:4]], ctx=ctx), back.model.begin_state(batch_size=1, ctx=ctx))
    return back.model


def check_everything_stays_on(ctx, name, tiny, folder):
    """Run _use_everything on ctx and fail, naming the place, if any array was created elsewhere."""
    model = d2lrnn.build_model(name, vocab_size=tiny[3], num_hiddens=8, ctx=ctx)
    with arrays_created_off(ctx) as strays:
        loaded = _use_everything(model, tiny, folder, ctx)
    assert not strays, (f"{len(strays)} arrays created off {ctx}: on {sorted({str(c) for c, _ in strays})} "
                        f"at {sorted({where for _, where in strays})}")
    arrays = model.param_arrays() + loaded.param_arrays()
    assert_all_on(ctx, arrays + [a.grad for a in model.param_arrays()], "weights and gradients")


@pytest.mark.parametrize("name", list(d2lrnn.MODELS))
def test_every_model_keeps_every_array_on_the_given_context(tiny, tmp_path, name):
    """MXNet mixes cpu(0) and cpu(1) silently, so a run on cpu(1) that creates nothing on cpu(0) creates
    nothing off the GPU on a GPU: every array made while training, evaluating, sampling, measuring
    gradients, saving and loading is watched as it is created."""
    check_everything_stays_on(OTHER_CPU, name, tiny, tmp_path / "ckpt")


@pytest.mark.parametrize("bug", ["minibatches", "column sums"])
def test_the_context_check_fails_when_an_array_lands_on_cpu0(tiny, tmp_path, monkeypatch, bug):
    """The check above is not vacuous: plant an array on the default device and it fails, naming where."""
    if bug == "minibatches":  # the iterator forgets its ctx: the model's inputs land on cpu(0)
        consecutive = training.data_iter_consecutive

        def forgetful(corpus, batch_size, num_steps, ctx):
            return consecutive(corpus, batch_size, num_steps)

        monkeypatch.setattr(training, "data_iter_consecutive", forgetful)
        name, where = "rnn", "data.py"
    else:  # a helper inside the backward pass by hand: invisible from the model's inputs and outputs
        def column_sums(A, out=None):  # nd.ones on the default device
            return nd.dot(nd.ones((1, A.shape[0])), A, out=None if out is None else out.reshape((1, -1)))

        monkeypatch.setattr(batched, "column_sums", column_sums)
        name, where = "rnn-bptt", "test_model.py"
    with pytest.raises(AssertionError, match=rf"off cpu\(1\).*cpu\(0\).*{where}"):
        check_everything_stays_on(OTHER_CPU, name, tiny, tmp_path / "ckpt")


def test_the_lecture_loops_keep_every_array_on_the_given_context(tiny):
    """train_and_predict_rnn with the lecture's own functions, and train_and_predict_rnn_gluon, on cpu(1)."""
    corpus, char_to_idx, idx_to_char, vocab = tiny
    corpus = corpus[:120]
    model = d2lrnn.RNNModel(grnn.RNN(8), vocab)
    with arrays_created_off(OTHER_CPU) as strays:
        for is_random in (True, False):
            d2lrnn.train_and_predict_rnn(d2lrnn.rnn, notebook_get_params(vocab, 8, OTHER_CPU),
                                         d2lrnn.init_rnn_state, 8, vocab, OTHER_CPU, corpus, idx_to_char,
                                         char_to_idx, is_random, 1, 5, 1.0, 0.1, 2, 1, 3, ["the"], **QUIET)
        d2lrnn.train_and_predict_rnn_gluon(model, 8, vocab, OTHER_CPU, corpus, idx_to_char, char_to_idx, 1, 5,
                                           1.0, 0.1, 2, 1, 3, ["the"], **QUIET)
        d2lrnn.predict_rnn_gluon("the", 3, model, vocab, OTHER_CPU, idx_to_char, char_to_idx)
    assert strays == []
    assert_all_on(OTHER_CPU, [p.data() for p in model.collect_params().values()], "Gluon parameters")


# --- try_gpu: the lecture's device choice ----------------------------------------------------------

def test_try_gpu_is_the_cpu_on_this_machine():
    if mx.context.num_gpus() > 0:
        pytest.skip("this machine has a GPU")
    assert d2lrnn.try_gpu() == mx.cpu() and d2lrnn.try_all_gpus() == [mx.cpu()]


@pytest.mark.parametrize("devices, works, gpu, all_gpus", [
    (2, {0, 1}, mx.gpu(0), [mx.gpu(0), mx.gpu(1)]),
    (3, {0, 2}, mx.gpu(0), [mx.gpu(0), mx.gpu(2)]),  # a broken GPU between is skipped, as the lecture does
    (2, {1}, mx.cpu(), [mx.gpu(1)]),                 # the lecture's try_gpu asks for gpu(0) only
    (2, set(), mx.cpu(), [mx.cpu()]),                # a driver that cannot allocate
], ids=["two", "middle-broken", "first-broken", "none-usable"])
def test_try_gpu_takes_only_gpus_that_work(monkeypatch, devices, works, gpu, all_gpus):
    monkeypatch.setattr(mx.context, "num_gpus", lambda: devices)
    monkeypatch.setattr(utils, "_gpu_works", lambda i: i in works)
    assert d2lrnn.try_gpu() == gpu and d2lrnn.try_all_gpus() == all_gpus


def test_a_cpu_only_build_that_cannot_count_gpus_means_the_cpu(monkeypatch):
    def no_cuda():
        raise mx.base.MXNetError("CUDA: no driver")

    monkeypatch.setattr(mx.context, "num_gpus", no_cuda)
    assert d2lrnn.try_gpu() == mx.cpu() and d2lrnn.try_all_gpus() == [mx.cpu()] and utils.num_gpus() == 0
