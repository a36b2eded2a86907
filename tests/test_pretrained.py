"""The shipped checkpoint loads, is small, and scores its recorded held-out perplexity on Tiny Shakespeare."""
import math

import pytest

import d2lrnn

from helpers import CPU


def test_shipped_checkpoint_reaches_its_recorded_held_out_loss(shakespeare):
    folder = d2lrnn.pretrained("shakespeare-lstm")
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5 * 2 ** 20
    ckpt = d2lrnn.load_checkpoint(folder, CPU)
    cfg = ckpt.config
    assert cfg["model"] == "gluon-lstm" and len(ckpt.idx_to_char) == 65
    text = d2lrnn.data.read_text(shakespeare)
    _, held_out = d2lrnn.data.split_text(text, val_fraction=cfg["val_fraction"])
    indices, missing = d2lrnn.data.encode(held_out, ckpt.char_to_idx)
    assert not missing and len(indices) == 111_539
    ppl = d2lrnn.evaluate_perplexity(ckpt.model, indices, ctx=CPU, num_steps=cfg["steps"],
                                     batch_size=cfg["batch_size"])
    recorded = cfg["position"]["best_val_perplexity"]
    assert ppl == pytest.approx(recorded, rel=1e-3) and math.log(ppl) < 1.70  # nats per character
    assert ckpt.history.val_perplexity[-1] == pytest.approx(recorded)


def test_an_unknown_shipped_name_lists_the_known_ones():
    with pytest.raises(d2lrnn.UserError, match="shakespeare-lstm"):
        d2lrnn.pretrained("gpt-5")
