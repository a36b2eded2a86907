"""Gradients through time: how the loss's gradient grows or fades with distance back in time.

`state_grad_norms` takes the loss at the LAST time step only (cross-entropy of the final
prediction), so entry k isolates how the signal from one loss decays or explodes over k more
steps; a summed loss would mix in the nearby steps' own losses and hide that.
"""
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

from .optim import global_norm


class _ClipBackward(autograd.Function):
    """Identity on the way forward; on the way back, rescale the state's gradient to norm <= theta."""

    def __init__(self, theta):
        super().__init__()
        self.theta = theta

    def forward(self, *state):
        return tuple(s.copy() for s in state) if len(state) > 1 else state[0].copy()

    def backward(self, *grads):
        scale = self.theta / nd.maximum(global_norm(grads), self.theta)  # 1 when the norm <= theta
        return tuple(g * scale for g in grads) if len(grads) > 1 else grads[0] * scale


def _clip_backward(state, theta):
    """Pass the state tuple through a fresh backward clipper (one per time step)."""
    out = _ClipBackward(theta)(*state)
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def state_grad_norms(model, indices, *, ctx, clip_theta=None):
    """Norms of d(last-step loss)/d(state) at each step back; entry k = state entering step T-k.

    indices: one sequence of T + 1 tokens; the model reads the first T and the loss is the
    cross-entropy of its last prediction against the final token. Entry 0 is the state fed into the
    last step, entry T - 1 the initial state. The norm is taken over the whole state tuple (H for
    rnn/gru, H and C together for lstm). With clip_theta, the gradient flowing back through the
    state is rescaled to norm <= clip_theta at every step (per-step clipping of the backward pass)
    and the clipped norms are reported. Parameter gradients (`p.grad`) are left untouched.
    """
    indices = [int(i) for i in indices]
    if len(indices) < 2:
        raise ValueError("indices needs at least 2 tokens: inputs and the target that follows them")
    X = nd.array([indices[:-1]], ctx=ctx)  # (1, T)
    y = nd.array([indices[-1]], ctx=ctx)   # (1,)
    state = tuple(model.begin_state(batch_size=1, ctx=ctx))
    probes = []  # one zero array per state component and step: d loss / d probe = d loss / d state
    with autograd.record():
        for t in range(X.shape[1]):
            step_probes = [nd.zeros_like(s) for s in state]
            for p in step_probes:
                p.attach_grad()
            probes.append(step_probes)
            state = tuple(s + p for s, p in zip(state, step_probes))  # same values, now watched
            if clip_theta is not None:
                state = _clip_backward(state, clip_theta)
            logits, state = model(X[:, t:t + 1], state)  # logits: (1, vocab)
        loss = gloss.SoftmaxCrossEntropyLoss()(logits, y).sum()
    grads = autograd.grad(loss, [p for step in probes for p in step], retain_graph=False)
    k = len(state)
    norms = [global_norm(grads[i:i + k]) for i in range(0, len(grads), k)]  # T arrays of (1,), oldest first
    return nd.concat(*norms, dim=0).asnumpy()[::-1].copy()  # (T,), index = distance back from the last step


def param_grad_norms(model, indices, num_steps_list, *, ctx):
    """Global L2 norm of the parameters' gradient of the mean training loss, per sequence length.

    For each n in num_steps_list the model reads indices[:n] and predicts indices[1:n+1] (the
    lecture's mean softmax cross-entropy); returns an array of norms before any clipping (after
    grad_clipping with theta the norm would be min(norm, theta)). `p.grad` is left untouched.
    """
    params, norms = model.param_arrays(), []
    for n in num_steps_list:
        if not 1 <= n < len(indices):
            raise ValueError(f"num_steps {n} needs 1 <= n < len(indices) = {len(indices)}")
        X = nd.array([list(indices[:n])], ctx=ctx)     # (1, n)
        Y = nd.array(list(indices[1:n + 1]), ctx=ctx)  # (n,)
        with autograd.record():
            logits, _ = model(X, model.begin_state(batch_size=1, ctx=ctx))  # (n, vocab)
            loss = gloss.SoftmaxCrossEntropyLoss()(logits, Y).mean()
        norms.append(global_norm(autograd.grad(loss, params, retain_graph=False)))
    return nd.concat(*norms, dim=0).asnumpy()  # (len(num_steps_list),)
