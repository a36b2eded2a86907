"""units.py: hidden states equal the model's own forward pass, features by hand, ranking finds a planted
unit, and the shipped model has a unit that follows the position in the line."""
import math

import numpy as np
import pytest
from mxnet import nd

import d2lrnn as d2l
from d2lrnn import units
from d2lrnn.cells import CELLS

from helpers import CPU as CTX

TEXT = "ab ba\nAB: c(a b)\n"
VOCAB = sorted(set(TEXT))
C2I = {c: i for i, c in enumerate(VOCAB)}


@pytest.mark.parametrize("name,layers,embed", [("rnn", 1, 0), ("lstm", 1, 0), ("lstm-bptt", 2, 0),
                                               ("gru-bptt", 1, 4), ("gluon-gru", 1, 0), ("gluon-lstm", 2, 0),
                                               ("gluon-rnn", 1, 4)])
def test_run_over_matches_the_models_forward_pass(name, layers, embed):
    d2l.set_seed(1)
    model = d2l.build_model(name, vocab_size=len(VOCAB), num_hiddens=8, ctx=CTX, num_layers=layers,
                            embed_size=embed)
    H, logits = units.run_over(model, TEXT, char_to_idx=C2I, ctx=CTX)
    assert H.shape == (len(TEXT), 8) and logits.shape == (len(TEXT), len(VOCAB))
    X = nd.array([[C2I[c] for c in TEXT]], ctx=CTX)
    expected, state = model(X, model.begin_state(batch_size=1, ctx=CTX))
    np.testing.assert_allclose(logits, expected.asnumpy(), rtol=1e-5, atol=1e-6)
    arrays_per_layer = CELLS[d2l.registry.model_spec(name).cell].state_arrays
    top_h = state[0][-1] if name.startswith("gluon") else state[(layers - 1) * arrays_per_layer]
    # the last row is the final state
    np.testing.assert_allclose(H[-1], top_h.asnumpy().reshape(-1), rtol=1e-5, atol=1e-6)


def test_run_over_names_unknown_characters_and_refuses_other_models():
    model = d2l.build_model("rnn", vocab_size=len(VOCAB), num_hiddens=4, ctx=CTX)
    with pytest.raises(ValueError, match="'z'"):
        units.run_over(model, "abz", char_to_idx=C2I, ctx=CTX)
    with pytest.raises(ValueError, match="at least one"):
        units.run_over(model, "", char_to_idx=C2I, ctx=CTX)
    with pytest.raises(TypeError, match="build_model"):
        units.run_over(object(), "ab", char_to_idx=C2I, ctx=CTX)


def test_text_features_by_hand():
    f = units.text_features("ab c(d)\nEF:x\"y\"")
    assert f["position in line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]
    assert f["inside brackets"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["inside quotes"].tolist() == [0] * 12 + [1, 1, 0]
    assert f["end of word"].tolist() == [0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0]
    assert f["vowel next"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert f["speaker's name"].tolist() == [0] * 15  # "EF:x" has lower-case letters
    assert units.text_features("a\nBC:\nd")["speaker's name"].tolist() == [0, 0, 1, 1, 1, 0, 0]


def test_rank_units_finds_a_planted_unit():
    rng = np.random.default_rng(0)
    feature = rng.random(500)
    H = rng.normal(size=(500, 20))
    H[:, 13] = -3 * feature + 0.01 * rng.normal(size=500)  # unit 13 tracks the feature, sign reversed
    H[:, 4] = 7.0                                          # a constant unit correlates with nothing
    ranked = units.rank_units(H, {"f": feature, "flat": np.ones(500)}, top=2)
    assert ranked["f"][0][0] == 13 and ranked["f"][0][1] == pytest.approx(-1, abs=1e-3)
    assert abs(ranked["f"][1][1]) < 0.2
    assert all(r == 0 for _, r in ranked["flat"])
    assert units.correlations(H, {"f": feature})[0, 4] == 0


def test_surprisal_and_top_candidates_by_hand():
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.15, 0.8, 0.05], [1 / 3] * 3]))
    c2i = {"a": 0, "b": 1, "c": 2}
    bits = units.surprisal(logits, "abb", char_to_idx=c2i)  # p(b | a) = 0.25, p(b | ab) = 0.8
    np.testing.assert_allclose(bits, [2.0, -math.log2(0.8)], rtol=1e-12)
    top = units.top_candidates(logits, ["a", "b", "c"], k=2)
    assert [c for c, _ in top[1]] == ["b", "a"] and top[1][1][1] == pytest.approx(0.15)
    assert top[0][0] == ("a", pytest.approx(0.5))


def test_highlight_escapes_and_colours_every_character():
    page = units.highlight("<a>\n", [0, 1, 2, 3], vmin=0, vmax=3)
    assert page.count("<span") == 4 and "&lt;" in page and "&gt;" in page and "<br>" in page
    low, high = units.highlight("ab", [0, 1], vmin=0, vmax=1, cmap="Greys").split("background-color:")[1:]
    assert low[:7] == "#ffffff" and high[:7] == "#000000"
    with pytest.raises(ValueError, match="2 values for 3"):
        units.highlight("abc", [1, 2])


def test_the_shipped_model_has_a_line_position_unit(shakespeare):
    """On the start of the held-out tenth of Tiny Shakespeare, text the shipped LSTM never trained on,
    some unit follows the position in the line."""
    ck = d2l.load_checkpoint(d2l.pretrained("shakespeare-lstm"), CTX)
    _, held_out = d2l.data.split_text(d2l.data.read_text(shakespeare), val_fraction=ck.config["val_fraction"])
    text = held_out[:1500]
    H, logits = units.run_over(ck.model, text, char_to_idx=ck.char_to_idx, ctx=CTX)
    best = units.rank_units(H, units.text_features(text), top=1)
    assert abs(best["position in line"][0][1]) > 0.6
    assert units.surprisal(logits, text, char_to_idx=ck.char_to_idx).mean() < 3  # bits per character
