"""optim.py: the global gradient norm, clipping, SGD and Adam against hand-computed and NumPy values."""
import math

import numpy as np
import pytest
from mxnet import nd

import d2lrnn
from d2lrnn.optim import make_optimizer

from helpers import CPU, OTHER_CPU, arrays_with_grads, assert_all_on, numpy_arrays


def _with_grads(*grads, values=None):
    """1-D arrays (zeros, or `values`) whose gradients are the given lists."""
    params = []
    for i, g in enumerate(grads):
        p = nd.array(values[i]) if values else nd.zeros(len(g))
        p.attach_grad()
        p.grad[:] = nd.array(g)
        params.append(p)
    return params


# 5 arrays (the lecture's RNN), 14 arrays (an LSTM), odd shapes
SHAPES = [[(43, 512), (512, 512), (512,), (512, 43), (43,)],
          [(7, 5), (5, 5), (5,)] * 4 + [(5, 7), (7,)],
          [(1,), (3, 1, 2), (1000,)]]


def test_global_norm_by_hand():
    assert d2lrnn.global_norm([nd.array([3.0, 0.0]), nd.array([[4.0]])]).asscalar() == pytest.approx(5.0)
    assert d2lrnn.global_norm([nd.array([1.0, 2.0, 2.0])]).shape == (1,)  # an array: no host sync


@pytest.mark.parametrize("shapes", SHAPES)
def test_global_norm_equals_numpy(shapes):
    arrays = arrays_with_grads(shapes)
    expected = math.sqrt(sum((a ** 2).sum() for a in numpy_arrays(arrays)))
    assert d2lrnn.global_norm(arrays).asscalar() == pytest.approx(expected, rel=1e-5)


def test_grad_clipping_scales_to_theta_by_the_global_norm():
    params = _with_grads([3.0, 0.0], [4.0])  # global norm 5: every gradient times 1/5
    d2lrnn.grad_clipping(params, 1.0, CPU)
    np.testing.assert_allclose(params[0].grad.asnumpy(), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(params[1].grad.asnumpy(), [0.8], rtol=1e-6)


@pytest.mark.parametrize("theta", [5.0, 10.0, math.inf])
def test_grad_clipping_leaves_gradients_within_theta_alone(theta):
    params = _with_grads([3.0, 0.0], [4.0])  # norm exactly 5: at theta 5 nothing changes either
    d2lrnn.grad_clipping(params, theta, CPU)
    np.testing.assert_array_equal(params[0].grad.asnumpy(), [3.0, 0.0])
    np.testing.assert_array_equal(params[1].grad.asnumpy(), [4.0])


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("scale", [1e-6, 1.0])
def test_grad_clipping_equals_numpy(shapes, scale):
    theta = 0.01
    params = arrays_with_grads(shapes, scale=scale)
    grads = [p.grad for p in params]  # clipping works in place: these very arrays change
    before = numpy_arrays(grads)
    norm = math.sqrt(sum((g ** 2).sum() for g in before))
    assert d2lrnn.grad_clipping(params, theta, CPU) is None
    factor = theta / norm if norm > theta else 1.0
    for g, b in zip(grads, before):
        np.testing.assert_allclose(g.asnumpy(), b * factor, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("theta", [0, -1.0, math.nan])
def test_grad_clipping_rejects_a_theta_that_is_not_positive(theta):
    with pytest.raises(ValueError, match="clipping_theta must be positive"):
        d2lrnn.grad_clipping(_with_grads([1.0]), theta, CPU)


def test_clipping_and_the_updates_stay_on_the_given_context():
    params = arrays_with_grads(SHAPES[0], ctx=OTHER_CPU)
    d2lrnn.grad_clipping(params, 0.01, OTHER_CPU)
    clipped = numpy_arrays(p.grad for p in params)
    assert math.sqrt(sum((g ** 2).sum() for g in clipped)) == pytest.approx(0.01, rel=1e-5)
    adam = d2lrnn.Adam(params, lr=0.1)
    adam.step()
    d2lrnn.sgd(params, 1.0, 2)
    assert_all_on(OTHER_CPU, params + [p.grad for p in params] + list(adam.state_arrays().values()))


def test_sgd_by_hand():
    p, = _with_grads([2.0, -4.0], values=[[1.0, 1.0]])
    d2lrnn.sgd([p], 0.5, 2)  # 1 - 0.5 * g / 2
    np.testing.assert_allclose(p.asnumpy(), [0.5, 2.0])


@pytest.mark.parametrize("batch_size", [1, 32])
def test_sgd_equals_numpy_and_updates_the_arrays_in_place(batch_size):
    params = arrays_with_grads(SHAPES[0])
    arrays = list(params)  # sgd must update these very arrays
    grads = numpy_arrays(p.grad for p in params)
    expected = [p - 100.0 * g / batch_size for p, g in zip(numpy_arrays(params), grads)]
    d2lrnn.sgd(params, 100.0, batch_size)
    for p, a, e in zip(params, arrays, expected):
        assert p is a
        np.testing.assert_allclose(p.asnumpy(), e, rtol=1e-5, atol=1e-5)


def test_the_sgd_optimiser_is_the_lectures_update_with_nothing_to_save():
    p, = _with_grads([2.0, -4.0], values=[[1.0, 1.0]])
    opt = d2lrnn.SGD([p], lr=0.25)
    opt.step()  # the loss is a mean already: p - lr * g
    np.testing.assert_allclose(p.asnumpy(), [0.5, 2.0])
    assert opt.state_arrays() == {}
    opt.load_state_arrays({})


def test_adams_first_step_is_lr_times_the_sign_of_the_gradient():
    """With bias correction, m_hat = g and v_hat = g^2 after one step: the update is lr * g / |g|.
    (Without it the step would be 0.1 g / sqrt(0.001 g^2), about 3.16 lr.)"""
    p, = _with_grads([0.5, -2.0, 0.1], values=[[1.0, -1.0, 0.0]])
    d2lrnn.Adam([p], lr=0.1).step()
    np.testing.assert_allclose(p.asnumpy(), [0.9, -0.9, -0.1], rtol=1e-5)


def _numpy_adam(w, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Kingma & Ba (2015), Algorithm 1 with the step size folded as in their section 2:
    lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), w -= lr_t m / (sqrt(v) + eps) (MXNet's adam_update)."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g ** 2
        w = w - lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + eps)
    return w, m, v


def test_adam_equals_numpy_over_several_steps_and_its_state_round_trips():
    rng = np.random.RandomState(0)
    w0 = rng.normal(size=(4, 3))
    grads = [rng.normal(scale=s, size=(4, 3)) for s in (1.0, 0.1, 3.0, 1e-4, 1.0)]
    p = nd.array(w0)
    p.attach_grad()
    opt = d2lrnn.Adam([p], lr=0.01)
    for g in grads[:3]:
        p.grad[:] = nd.array(g)
        opt.step()
    w, m, v = _numpy_adam(w0, grads[:3], lr=0.01)
    np.testing.assert_allclose(p.asnumpy(), w, rtol=1e-5, atol=1e-7)
    saved = {name: a.copy() for name, a in opt.state_arrays().items()}
    assert opt.t == 3 and int(saved["adam_t"].asscalar()) == 3
    np.testing.assert_allclose(saved["adam_mean00"].asnumpy(), m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(saved["adam_var00"].asnumpy(), v, rtol=1e-4, atol=1e-9)  # float32 squares

    q = p.copy()  # a second optimiser, restored from the saved state, continues exactly like the first
    q.attach_grad()
    resumed = d2lrnn.Adam([q], lr=0.01)
    resumed.load_state_arrays(saved)
    assert resumed.t == 3
    for g in grads[3:]:
        for param, optimizer in ((p, opt), (q, resumed)):
            param.grad[:] = nd.array(g)
            optimizer.step()
    np.testing.assert_array_equal(q.asnumpy(), p.asnumpy())
    np.testing.assert_allclose(p.asnumpy(), _numpy_adam(w0, grads, lr=0.01)[0], rtol=1e-5, atol=1e-7)


def test_optimisers_by_name():
    params = _with_grads([1.0])
    assert type(make_optimizer("sgd", params, 0.1)) is d2lrnn.SGD
    assert type(make_optimizer("adam", params, 0.1)) is d2lrnn.Adam
    with pytest.raises(ValueError, match="sgd, adam"):
        make_optimizer("rmsprop", params, 0.1)
