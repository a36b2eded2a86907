"""Sampling: greedy at top_k=1, reproducible, faithful to the softmax, and strict about arguments."""
import random
from collections import Counter

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

import d2lrnn
from d2lrnn.generation import generate, sample_index

from helpers import CPU, random_model

CHARS = list("abcdefgh ")
C2I = {c: i for i, c in enumerate(CHARS)}
V, HID = len(CHARS), 8


def _random_model(name, chars=CHARS):
    return random_model(name, vocab_size=len(chars), num_hiddens=HID, scale=1.0)


def _fixed_logits_model(logits):
    """A model whose every prediction is `logits` (all weights zero, b_q = logits)."""
    model = d2lrnn.build_model("rnn", vocab_size=len(logits), num_hiddens=2, ctx=CPU)
    for p in model.params:
        p[:] = 0
    model.params[-1][:] = nd.array(logits)
    return model


def _gen(model, prefix="ab", n=30, chars=CHARS, **kw):
    char_to_idx = {c: i for i, c in enumerate(chars)}
    return generate(model, prefix, n, ctx=CPU, idx_to_char=chars, char_to_idx=char_to_idx, **kw)


@pytest.mark.parametrize("name", list(d2lrnn.MODELS))
@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_top_k_1_is_greedy(name, temperature):
    model = _random_model(name)
    assert _gen(model, "abc", 25, temperature=temperature, top_k=1, seed=123) == _gen(model, "abc", 25)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gluon-gru"])
def test_same_seed_same_text_different_seeds_differ(name):
    model = _random_model(name)
    assert _gen(model, temperature=2.0, seed=7) == _gen(model, temperature=2.0, seed=7)
    assert len({_gen(model, temperature=2.0, seed=s) for s in range(5)}) > 1


def test_returns_prefix_plus_num_chars():
    model = _random_model("rnn")
    text = _gen(model, n=17, temperature=1.0)
    assert text.startswith("ab") and len(text) == 2 + 17
    assert _gen(model, n=0, temperature=1.0) == "ab"


def test_global_random_state_is_untouched():
    model = _random_model("rnn")
    np_state, py_state = np.random.get_state(), random.getstate()
    mx.random.seed(5)
    expected = nd.random.uniform(shape=(3,)).asnumpy()
    mx.random.seed(5)
    _gen(model, temperature=1.0, seed=1)
    _gen(model, temperature=1.0)  # seed=None: fresh entropy, still a local generator
    assert (nd.random.uniform(shape=(3,)).asnumpy() == expected).all()
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and (after[1] == np_state[1]).all() and after[2:] == np_state[2:]


def _lecture_arguments(model):
    """What predict_rnn and sample_rnn take after the prefix and the length, for a `gru` model."""
    return dict(rnn=d2lrnn.gru, params=model.params, init_rnn_state=d2lrnn.init_gru_state, num_hiddens=HID,
                vocab_size=V, ctx=CPU, idx_to_char=CHARS, char_to_idx=C2I)


def _draws(logits, n, **kw):
    """Frequencies of n draws of sample_index (the per-token choice of generate)."""
    rng = np.random.default_rng(0)
    counts = np.bincount([sample_index(logits, rng=rng, **kw) for _ in range(n)], minlength=len(logits))
    return counts / n


def test_frequencies_follow_the_softmax():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    np.testing.assert_allclose(_draws(np.log(p) + 3.0, 20000, temperature=1.0, top_k=None), p, atol=0.01)
    chars = list("wxyz")  # and end to end, through a model whose every prediction is log(p)
    text = _gen(_fixed_logits_model(np.log(p)), prefix="w", n=600, chars=chars, temperature=1.0, seed=0)
    freq = np.array([Counter(text[1:])[c] for c in chars]) / 600
    np.testing.assert_allclose(freq, p, atol=0.06)


def test_top_k_keeps_only_the_k_most_likely_renormalised():
    logits = np.log([0.1, 0.4, 0.2, 0.3])
    np.testing.assert_allclose(_draws(logits, 20000, temperature=1.0, top_k=2), [0, 4 / 7, 0, 3 / 7],
                               atol=0.01)
    text = _gen(_fixed_logits_model(logits), prefix="w", n=200, chars=list("wxyz"), top_k=2, seed=0)
    assert set(text[1:]) == {"x", "z"}


def test_temperature_sharpens_and_flattens():
    logits = np.log([0.1, 0.4, 0.2, 0.3])
    assert _draws(logits, 2000, temperature=0.01, top_k=None)[1] == 1.0
    np.testing.assert_allclose(_draws(logits, 20000, temperature=100.0, top_k=None), 0.25, atol=0.015)
    sq = np.array([0.1, 0.4, 0.2, 0.3]) ** 2  # T = 1/2 squares the probabilities
    np.testing.assert_allclose(_draws(logits, 20000, temperature=0.5, top_k=None), sq / sq.sum(), atol=0.01)


@pytest.mark.parametrize("temperature", [1e-30, 1e-300, 1e-310, 5e-324])
def test_a_tiny_temperature_is_greedy_not_inverted(temperature, recwarn):
    """Dividing by a subnormal temperature overflows: the best logit must still win, silently."""
    logits = np.log([0.1, 0.4, 0.2, 0.3])
    assert _draws(logits, 200, temperature=temperature, top_k=None)[1] == 1.0
    kw = _lecture_arguments(_random_model("gru"))
    greedy = d2lrnn.predict_rnn("abc", 30, **kw)
    assert d2lrnn.sample_rnn("abc", 30, **kw, temperature=temperature, seed=1) == greedy
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # no overflow warning either


def test_all_zero_model_samples_uniformly():
    model = d2lrnn.build_model("lstm", vocab_size=V, num_hiddens=HID, ctx=CPU)
    for p in model.params:
        p[:] = 0
    text = _gen(model, prefix="a", n=300, temperature=1.0, seed=3)
    freq = np.array([Counter(text[1:])[c] for c in CHARS]) / 300
    np.testing.assert_allclose(freq, 1 / V, atol=0.07)


@pytest.mark.parametrize("kw, match", [
    ({"temperature": 0}, "temperature"), ({"temperature": -1.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_k": -2}, "top_k"),
    ({"top_k": 1.5}, "top_k"), ({"n": -3}, "num_chars"), ({"n": 2.5}, "num_chars")])
def test_bad_arguments_are_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        _gen(_random_model("rnn"), **kw)


def test_prefix_outside_vocabulary_names_the_characters():
    with pytest.raises(ValueError) as err:
        _gen(_random_model("rnn"), prefix="aQbZ")
    assert "'Q'" in str(err.value) and "'Z'" in str(err.value)


def test_sample_rnn_is_the_lecture_style_wrapper():
    model = _random_model("gru")
    kw = _lecture_arguments(model)
    sampled = _gen(model, "abc", 20, temperature=0.7, seed=4)
    assert d2lrnn.sample_rnn("abc", 20, **kw, temperature=0.7, seed=4) == sampled
    assert d2lrnn.sample_rnn("abc", 20, **kw, top_k=1) == d2lrnn.predict_rnn("abc", 20, **kw)


def test_word_level_vocabulary_joins_words_with_spaces():
    words = ["<unk>", "the", "time", "traveller", "said", "a"]
    model = _random_model("rnn", chars=words)
    text = _gen(model, "the time", 12, chars=words, temperature=1.0, seed=0)
    tokens = text.split(" ")
    assert tokens[:2] == ["the", "time"] and len(tokens) == 14 and set(tokens) <= set(words)
    assert _gen(model, "the time", 12, chars=words, top_k=1) == _gen(model, "the time", 12, chars=words)
