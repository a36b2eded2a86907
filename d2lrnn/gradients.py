"""Gradients through time: how the loss's gradient grows or fades with distance back in time.

`state_grad_norms` takes the loss at the LAST time step only (cross-entropy of the final
prediction), so entry k isolates how the signal from one loss decays or explodes over k more
steps; a summed loss would mix in the nearby steps' own losses and hide that.
"""
import numpy as np

from . import _compat  # noqa: F401  (restores numpy.bool before MXNet loads)
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

from .data import to_onehot


class _ClipBackward(autograd.Function):
    """Identity on the way forward; on the way back, rescale the state's gradient to norm <= theta."""

    def __init__(self, theta):
        super().__init__()
        self.theta = theta

    def forward(self, *state):
        return tuple(s.copy() for s in state) if len(state) > 1 else state[0].copy()

    def backward(self, *grads):
        norm = nd.sqrt(nd.add_n(*[(g ** 2).sum() for g in grads]))  # (1,), joint over (H, C)
        scale = self.theta / nd.maximum(norm, self.theta)           # 1 when norm <= theta
        return tuple(g * scale for g in grads) if len(grads) > 1 else grads[0] * scale


def _clip_backward(state, theta):
    """Pass the state tuple through a fresh backward clipper (one per time step)."""
    out = _ClipBackward(theta)(*state)
    return out if isinstance(out, (tuple, list)) else (out,)


def _sequence(indices, vocab_size, ctx):
    """Token indices -> (one-hot inputs of (1, vocab) per step, the last target as a (1,) array)."""
    indices = [int(i) for i in indices]
    if len(indices) < 2:
        raise ValueError("indices needs at least 2 tokens: inputs and the target that follows them")
    X = nd.array([indices[:-1]], ctx=ctx)      # (1, steps)
    y = nd.array([indices[-1]], ctx=ctx)       # (1,)
    return to_onehot(X, vocab_size), y


def state_grad_norms(rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx, indices,
                     clip_theta=None):
    """Norms of d(last-step loss)/d(state) at each step back; entry k = state entering step T-k.

    indices: one sequence of T + 1 tokens; the model reads the first T and the loss is the
    cross-entropy of its last prediction against the final token. Entry 0 is the state fed into the
    last step, entry T - 1 the initial state. The norm is taken over the whole state tuple (H for
    rnn/gru, H and C together for lstm). With clip_theta, the gradient flowing back through the
    state is rescaled to norm <= clip_theta at every step (per-step clipping of the backward pass)
    and the clipped norms are reported. Parameter gradients (`p.grad`) are left untouched.
    """
    inputs, y = _sequence(indices, vocab_size, ctx)
    state = init_rnn_state(1, num_hiddens, ctx)
    probes = []  # one zero array per state component and step: d loss / d probe = d loss / d state
    with autograd.record():
        for X in inputs:
            step_probes = [nd.zeros_like(s) for s in state]
            for p in step_probes:
                p.attach_grad()
            probes.append(step_probes)
            state = tuple(s + p for s, p in zip(state, step_probes))  # same values, now watched
            if clip_theta is not None:
                state = _clip_backward(state, clip_theta)
            outputs, state = rnn([X], state, params)
        loss = gloss.SoftmaxCrossEntropyLoss()(outputs[-1], y).sum()
    grads = autograd.grad(loss, [p for step in probes for p in step], retain_graph=False)
    per_step = np.array([sum(float((g ** 2).sum().asscalar()) for g in grads[i:i + len(state)])
                         for i in range(0, len(grads), len(state))])  # (T,), oldest state first
    return np.sqrt(per_step)[::-1].copy()  # (T,), index = distance back from the last step


def param_grad_norms(rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx, indices,
                     num_steps_list):
    """Global L2 norm of the parameters' gradient of the mean training loss, per sequence length.

    For each n in num_steps_list the model reads indices[:n] and predicts indices[1:n+1] (the
    lecture's mean softmax cross-entropy); returns an array of norms before any clipping (after
    grad_clipping with theta the norm would be min(norm, theta)). `p.grad` is left untouched.
    """
    norms = []
    for n in num_steps_list:
        if not 1 <= n < len(indices):
            raise ValueError(f"num_steps {n} needs 1 <= n < len(indices) = {len(indices)}")
        X = nd.array([list(indices[:n])], ctx=ctx)         # (1, n)
        Y = nd.array(list(indices[1:n + 1]), ctx=ctx)      # (n,)
        with autograd.record():
            outputs, _ = rnn(to_onehot(X, vocab_size), init_rnn_state(1, num_hiddens, ctx), params)
            loss = gloss.SoftmaxCrossEntropyLoss()(nd.concat(*outputs, dim=0), Y).mean()
        grads = autograd.grad(loss, params, retain_graph=False)
        norms.append(float(nd.sqrt(nd.add_n(*[(g ** 2).sum() for g in grads])).asscalar()))
    return np.array(norms)  # (len(num_steps_list),)
