"""Optimisation: the global gradient norm, clipping, and the SGD and Adam updates."""
import math

from mxnet import nd


def global_norm(arrays):
    """L2 norm of several arrays taken together, as a (1,) array on their device (no host sync)."""
    # |g|^2 = g . g: one BLAS dot per array, several times faster than (g ** 2).sum() on a CPU
    return nd.sqrt(nd.add_n(*[nd.dot(a.reshape(-1), a.reshape(-1)) for a in arrays]))  # (1,)


def grad_clipping(params, theta, ctx):
    """Rescale all gradients so their global L2 norm is at most theta (no host sync)."""
    if not theta > 0:
        raise ValueError(f"clipping_theta must be positive, got {theta}")
    if theta == math.inf:  # no clipping
        return
    grads = [p.grad for p in params]
    norm = global_norm(grads)                # (1,), on ctx like the gradients
    scale = theta / nd.maximum(norm, theta)  # 1 when norm <= theta, else theta / norm
    for g in grads:
        nd.broadcast_mul(g, scale, out=g)    # g *= scale, in place


def sgd(params, lr, batch_size):
    """Minibatch SGD in place: p -= lr * grad / batch_size."""
    for p in params:
        nd.sgd_update(p, p.grad, lr=lr, rescale_grad=1.0 / batch_size, out=p)  # one fused operator


class SGD:
    """The lecture's update for every array of a model: p -= lr * grad."""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self):
        """Apply one update with the gradients now in p.grad."""
        sgd(self.params, self.lr, 1)  # the loss is already a mean over the minibatch

    def state_arrays(self):
        """What a checkpoint must keep to resume this optimiser exactly (nothing for SGD)."""
        return {}

    def load_state_arrays(self, arrays):
        """Restore what state_arrays returned."""


class Adam:
    """Adam (Kingma & Ba, 2015) with bias-corrected moments, on MXNet's fused adam_update."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.params, self.lr = list(params), lr
        self.beta1, self.beta2, self.epsilon, self.t = beta1, beta2, epsilon, 0
        self.mean = [nd.zeros_like(p) for p in self.params]  # first moments, one per array
        self.var = [nd.zeros_like(p) for p in self.params]   # second moments

    def step(self):
        """Apply one update with the gradients now in p.grad."""
        self.t += 1
        lr = self.lr * math.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)  # bias correction
        for p, m, v in zip(self.params, self.mean, self.var):
            nd.adam_update(p, p.grad, m, v, lr=lr, beta1=self.beta1, beta2=self.beta2,
                           epsilon=self.epsilon, out=p)  # updates m and v in place too

    def state_arrays(self):
        """What a checkpoint must keep to resume this optimiser exactly."""
        arrays = {"adam_t": nd.array([self.t], ctx=self.params[0].context)}
        for i, (m, v) in enumerate(zip(self.mean, self.var)):
            arrays[f"adam_mean{i:02d}"], arrays[f"adam_var{i:02d}"] = m, v
        return arrays

    def load_state_arrays(self, arrays):
        """Restore what state_arrays returned."""
        self.t = int(arrays["adam_t"].asscalar())
        for i, (m, v) in enumerate(zip(self.mean, self.var)):
            m[:], v[:] = arrays[f"adam_mean{i:02d}"], arrays[f"adam_var{i:02d}"]


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name, params, lr):
    """An optimiser by name ('sgd' or 'adam') over the given arrays."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
    return OPTIMIZERS[name](params, lr)
