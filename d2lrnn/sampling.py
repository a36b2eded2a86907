"""Sampling instead of argmax: temperature and top-k, reproducible with a seed."""
import numpy as np

from . import _compat  # noqa: F401  (restores numpy.bool before MXNet loads)
from mxnet import nd

from .data import to_onehot
from .generate import generate


def _check_sampling_args(temperature, top_k):
    """Reject a temperature <= 0 or a top_k < 1 with a message that says what is allowed."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (1 samples the model as is, smaller is greedier, "
                         f"larger is more random), got {temperature!r}")
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise ValueError(f"top_k must be a whole number >= 1 (1 is greedy) or None for no limit, "
                         f"got {top_k!r}")


def sample_index(logits, temperature, top_k, rng):
    """Draw one token index from softmax(logits / temperature) over the top_k largest logits."""
    logits = np.asarray(logits, dtype=np.float64).ravel()  # (vocab,)
    order = np.argsort(-logits, kind="stable")             # best first; ties keep the lower index
    if top_k is not None:
        order = order[:int(top_k)]                         # (k,)
    z = logits[order] / temperature
    cdf = np.cumsum(np.exp(z - z.max()))                   # unnormalised, (k,)
    pick = np.searchsorted(cdf, rng.random() * cdf[-1], side="right")
    return int(order[min(pick, order.size - 1)])


def sample_rnn(prefix, num_chars, rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx,
               idx_to_char, char_to_idx, temperature=1.0, top_k=None, seed=None):
    """Warm up on the prefix, then append num_chars tokens sampled with temperature and top-k."""
    _check_sampling_args(temperature, top_k)
    rng = np.random.default_rng(seed)  # local generator: the global RNGs are left alone

    def step(idx, state):
        X = to_onehot(nd.array([[idx]], ctx=ctx), vocab_size)  # one step of (1, vocab)
        outputs, state = rnn(X, state, params)
        return outputs[0], state                               # logits (1, vocab)

    def choose(logits):
        return sample_index(logits.asnumpy()[0], temperature, top_k, rng)

    state = init_rnn_state(1, num_hiddens, ctx)
    return generate(prefix, num_chars, step, state, char_to_idx, idx_to_char, choose)
