"""sample_rnn: greedy at top_k=1, reproducible, faithful to the softmax, and strict about arguments."""
import random
from collections import Counter

import numpy as np
import pytest

import d2lrnn  # noqa: F401  (numpy shim before MXNet)
import mxnet as mx
from mxnet import nd

from d2lrnn.gated import get_lstm_params, init_lstm_state, lstm, scratch_models
from d2lrnn.generate import predict_rnn
from d2lrnn.model import get_params, init_rnn_state, rnn
from d2lrnn.sampling import sample_index, sample_rnn

CHARS = list("abcdefgh ")
C2I = {c: i for i, c in enumerate(CHARS)}
V, HID = len(CHARS), 8
MODELS = list(scratch_models().values())


def _random_params(get):
    params = get(V, HID, mx.cpu())
    for p in params:
        p[:] = nd.array(np.random.normal(scale=1.0, size=p.shape))
    return params


def _fixed_logits_model(logits):
    """A lecture rnn whose every prediction is `logits` (all weights zero, b_q = logits)."""
    params = [p.zeros_like() for p in get_params(len(logits), 2, mx.cpu())]
    params[-1][:] = nd.array(logits)
    return params


def _sample(params, model=rnn, init=init_rnn_state, prefix="ab", n=30, chars=CHARS, **kw):
    c2i = {c: i for i, c in enumerate(chars)}
    num_hiddens = params[-2].shape[0]  # W_hq: (hidden, vocab) in every model
    return sample_rnn(prefix, n, model, params, init, num_hiddens, len(chars), mx.cpu(), chars, c2i, **kw)


@pytest.mark.parametrize("get, init, model", MODELS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_top_k_1_is_greedy_predict_rnn(get, init, model, temperature):
    params = _random_params(get)
    greedy = predict_rnn("abc", 25, model, params, init, HID, V, mx.cpu(), CHARS, C2I)
    sampled = sample_rnn("abc", 25, model, params, init, HID, V, mx.cpu(), CHARS, C2I,
                         temperature=temperature, top_k=1, seed=123)
    assert sampled == greedy


@pytest.mark.parametrize("get, init, model", MODELS)
def test_same_seed_same_text_different_seeds_differ(get, init, model):
    params = _random_params(get)
    run = lambda seed: sample_rnn("ab", 40, model, params, init, HID, V, mx.cpu(), CHARS, C2I,
                                  temperature=2.0, seed=seed)
    assert run(7) == run(7)
    assert len({run(s) for s in range(5)}) > 1


def test_returns_prefix_plus_num_chars():
    text = _sample(_random_params(get_params), n=17)
    assert text.startswith("ab") and len(text) == 2 + 17
    assert _sample(_random_params(get_params), n=0) == "ab"


def test_global_random_state_is_untouched():
    params = _random_params(get_params)
    np_state, py_state = np.random.get_state(), random.getstate()
    mx.random.seed(5)
    expected = nd.random.uniform(shape=(3,)).asnumpy()
    mx.random.seed(5)
    _sample(params, seed=1)
    _sample(params)  # seed=None: fresh entropy, still a local generator
    assert (nd.random.uniform(shape=(3,)).asnumpy() == expected).all()
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and (after[1] == np_state[1]).all() and after[2:] == np_state[2:]


def _draws(logits, n, **kw):
    """Frequencies of n draws of sample_index (the per-token step of sample_rnn)."""
    rng = np.random.default_rng(0)
    counts = np.bincount([sample_index(logits, rng=rng, **kw) for _ in range(n)], minlength=len(logits))
    return counts / n


def test_frequencies_follow_the_softmax():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    np.testing.assert_allclose(_draws(np.log(p) + 3.0, 20000, temperature=1.0, top_k=None), p, atol=0.01)
    chars = list("wxyz")  # and end to end, through a model whose every prediction is log(p)
    text = _sample(_fixed_logits_model(np.log(p)), prefix="w", n=600, chars=chars, seed=0)
    freq = np.array([Counter(text[1:])[c] for c in chars]) / 600
    np.testing.assert_allclose(freq, p, atol=0.06)


def test_top_k_keeps_only_the_k_most_likely_renormalised():
    logits = np.log([0.1, 0.4, 0.2, 0.3])
    np.testing.assert_allclose(_draws(logits, 20000, temperature=1.0, top_k=2), [0, 4 / 7, 0, 3 / 7],
                               atol=0.01)
    text = _sample(_fixed_logits_model(logits), prefix="w", n=200, chars=list("wxyz"), top_k=2, seed=0)
    assert set(text[1:]) == {"x", "z"}


def test_temperature_sharpens_and_flattens():
    logits = np.log([0.1, 0.4, 0.2, 0.3])
    assert _draws(logits, 2000, temperature=0.01, top_k=None)[1] == 1.0
    np.testing.assert_allclose(_draws(logits, 20000, temperature=100.0, top_k=None), 0.25, atol=0.015)
    sq = np.array([0.1, 0.4, 0.2, 0.3]) ** 2  # T = 1/2 squares the probabilities
    np.testing.assert_allclose(_draws(logits, 20000, temperature=0.5, top_k=None), sq / sq.sum(), atol=0.01)


def test_all_zero_model_samples_uniformly():
    params = [p.zeros_like() for p in get_lstm_params(V, HID, mx.cpu())]
    text = sample_rnn("a", 300, lstm, params, init_lstm_state, HID, V, mx.cpu(), CHARS, C2I, seed=3)
    freq = np.array([Counter(text[1:])[c] for c in CHARS]) / 300
    np.testing.assert_allclose(freq, 1 / V, atol=0.07)


@pytest.mark.parametrize("kw, match", [({"temperature": 0}, "temperature"),
                                       ({"temperature": -1.0}, "temperature"),
                                       ({"top_k": 0}, "top_k"), ({"top_k": -2}, "top_k"),
                                       ({"top_k": 1.5}, "top_k")])
def test_bad_arguments_are_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        _sample(_random_params(get_params), **kw)


def test_prefix_outside_vocabulary_names_the_characters():
    with pytest.raises(ValueError) as err:
        _sample(_random_params(get_params), prefix="aQbZ")
    assert "'Q'" in str(err.value) and "'Z'" in str(err.value)


def test_word_level_vocabulary_joins_words_with_spaces():
    words = ["<unk>", "the", "time", "traveller", "said", "a"]
    c2i = {w: i for i, w in enumerate(words)}
    params = get_params(len(words), HID, mx.cpu())
    text = sample_rnn("the time", 12, rnn, params, init_rnn_state, HID, len(words), mx.cpu(), words,
                      c2i, seed=0)
    tokens = text.split(" ")
    assert tokens[:2] == ["the", "time"] and len(tokens) == 14
    assert set(tokens) <= set(words)
    greedy = predict_rnn("the time", 12, rnn, params, init_rnn_state, HID, len(words), mx.cpu(), words, c2i)
    assert sample_rnn("the time", 12, rnn, params, init_rnn_state, HID, len(words), mx.cpu(), words, c2i,
                      top_k=1) == greedy
