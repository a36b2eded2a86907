"""registry.py: every name builds what its summary says and trains the way it says; options are checked;
tensor sizes are computed by hand and match the real arrays; too-large models are refused before anything
is allocated."""
import resource
import time

import pytest
from mxnet import nd

import d2lrnn
from d2lrnn import registry, training
from d2lrnn.cells import CELLS
from d2lrnn.cells.batched import BatchedModel
from d2lrnn.model import FusedLayer, LayerStack, RNNModel, ScratchModel
from d2lrnn.registry import MAX_ELEMENTS, MODELS, build_from_config, build_model, check_fits, tensor_sizes

from helpers import CPU, random_tokens

V, HID = 11, 6
KINDS = {"lecture": ScratchModel, "bptt": BatchedModel, "gluon": RNNModel}


def test_the_registry_has_each_cell_three_ways():
    assert list(MODELS) == ["rnn", "gru", "lstm", "rnn-bptt", "gru-bptt", "lstm-bptt",
                            "gluon-rnn", "gluon-gru", "gluon-lstm"]
    assert {(spec.cell, spec.kind) for spec in MODELS.values()} == {(c, k) for c in CELLS for k in KINDS}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_name_builds_what_its_summary_says(name):
    spec = MODELS[name]
    model = build_model(name, vocab_size=V, num_hiddens=HID, ctx=CPU)
    assert type(model) is KINDS[spec.kind]
    if spec.kind == "lecture":  # the lecture's own step function, its parameters and state
        cell = CELLS[spec.cell]
        assert model.rnn is cell.step and model.init_state is cell.init_state
        assert [p.shape for p in model.params] == [p.shape for p in cell.get_params(V, HID, CPU)]
        assert "step function" in spec.summary and "autograd" in spec.summary
    elif spec.kind == "bptt":
        assert model.cell == spec.cell and model.backward_by_hand
        assert "batched" in spec.summary and "by hand" in spec.summary
    else:
        assert isinstance(model.rnn, FusedLayer) and model.rnn.mode == FusedLayer.MODES[spec.cell][0]
        assert "fused" in spec.summary and f"gluon.rnn.{spec.cell.upper()}" in spec.summary
    logits, state = model(random_tokens(V, (2, 3)), model.begin_state(batch_size=2, ctx=CPU))
    assert logits.shape == (6, V) and len(state) == CELLS[spec.cell].state_arrays


@pytest.mark.parametrize("name, how", [("rnn", "autograd"), ("gru", "autograd"), ("lstm-bptt", "by hand"),
                                       ("gru-bptt", "by hand"), ("gluon-rnn", "autograd")])
def test_every_name_trains_the_way_its_summary_says(tiny, monkeypatch, name, how):
    used = []
    record, by_hand = training.autograd.record, BatchedModel.loss_and_grads

    def counted_record(*args, **kwargs):
        used.append("autograd")
        return record(*args, **kwargs)

    def counted_by_hand(*args):
        used.append("by hand")
        return by_hand(*args)

    monkeypatch.setattr(training.autograd, "record", counted_record)
    monkeypatch.setattr(BatchedModel, "loss_and_grads", counted_by_hand)
    model = build_model(name, vocab_size=tiny[3], num_hiddens=HID, ctx=CPU)
    training.train_epoch(model, tiny[0][:60], d2lrnn.SGD(model.param_arrays(), lr=1.0),
                         training.TrainOptions(num_steps=5, batch_size=2), ctx=CPU)
    assert set(used) == {how} and len(used) == training.num_batches(60, num_steps=5, batch_size=2)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("option", [{"num_layers": 2}, {"embed_size": 4}, {"dropout": 0.2}])
def test_the_lectures_cells_refuse_layers_embeddings_and_dropout(cell, option):
    with pytest.raises(ValueError, match=rf"'{cell}' is the lecture's cell.*{cell}-bptt or gluon-{cell}"):
        build_model(cell, vocab_size=V, num_hiddens=HID, ctx=CPU, **option)


@pytest.mark.parametrize("name", ["lstm-bptt", "gluon-lstm"])
def test_the_other_kinds_stack_layers_with_an_embedding_and_dropout(name):
    model = build_model(name, vocab_size=V, num_hiddens=HID, ctx=CPU, num_layers=3, embed_size=4, dropout=0.2)
    assert model.config == {"model": name, "hidden": HID, "layers": 3, "embed": 4, "dropout": 0.2}
    if name.startswith("gluon"):
        assert isinstance(model.rnn, LayerStack) and len(model.rnn.layers) == 3  # dropout needs a layer each
    else:
        assert model.param_arrays()[0].shape == (V, 4)  # the embedding comes first
    again = build_from_config(model.config, vocab_size=V, ctx=CPU)
    assert type(again) is type(model) and [a.shape for a in again.param_arrays()] == \
        [a.shape for a in model.param_arrays()]
    assert len(model.begin_state(batch_size=2, ctx=CPU)) == (6 if name == "lstm-bptt" else 2 * 3)


@pytest.mark.parametrize("options, match", [
    ({"num_layers": 0}, "num_layers"), ({"embed_size": -1}, "embed_size"), ({"dropout": 1.0}, "dropout"),
    ({"num_hiddens": 2.5}, "num_hiddens"), ({"num_hiddens": True}, "num_hiddens"),
    ({"dropout": -0.1}, "dropout")])
def test_bad_options_are_value_errors(options, match):
    with pytest.raises(ValueError, match=match):
        build_model("lstm-bptt", **{"vocab_size": V, "num_hiddens": HID, "ctx": CPU, **options})


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'transformer': choose one of rnn, gru, lstm, rnn-"):
        build_model("transformer", vocab_size=V, num_hiddens=HID, ctx=CPU)


def test_scratch_functions_are_the_lectures_for_both_scratch_kinds():
    for name in ("gru", "gru-bptt"):
        assert d2lrnn.scratch_functions(name) == (d2lrnn.gru, d2lrnn.get_gru_params, d2lrnn.init_gru_state)
    with pytest.raises(ValueError, match="fused Gluon model"):
        d2lrnn.scratch_functions("gluon-gru")


# --- sizes, and what does not fit ------------------------------------------------------------------

def test_tensor_sizes_by_hand():
    assert tensor_sizes("lstm-bptt", vocab_size=43, num_hiddens=10, num_layers=2, embed_size=5, batch_size=3,
                        num_steps=7) == {
        "output layer (hidden x vocabulary)": 10 * 43,                         # 430
        "logits (steps * batch x vocabulary)": 21 * 43,                        # 903
        "gate activations (steps * batch x gates * hidden)": 21 * 4 * 10,      # 840
        "first layer's input weights": 5 * 4 * 10,                             # the embedding's 5 inputs
        "embedding (vocabulary x embed)": 43 * 5}
    sizes = tensor_sizes("gluon-gru", vocab_size=43, num_hiddens=10, num_layers=2)
    # each layer: 3 gates x 10 units x (inputs + 10 recurrent + 2 biases); inputs 43, then 10
    assert sizes["fused layer's flat weights"] == 3 * 10 * (43 + 10 + 2) + 3 * 10 * (10 + 10 + 2) == 2310
    assert sizes["first layer's input weights"] == 43 * 30 and "embedding (vocabulary x embed)" not in sizes


@pytest.mark.parametrize("name, layers, embed", [("gru-bptt", 2, 4), ("lstm-bptt", 1, 0),
                                                 ("gluon-lstm", 2, 0), ("gluon-rnn", 1, 3)])
def test_tensor_sizes_are_the_sizes_of_the_real_arrays(name, layers, embed):
    model = build_model(name, vocab_size=V, num_hiddens=HID, ctx=CPU, num_layers=layers, embed_size=embed)
    sizes = tensor_sizes(name, vocab_size=V, num_hiddens=HID, num_layers=layers, embed_size=embed,
                         batch_size=2, num_steps=3)
    arrays = model.param_arrays()
    logits, _ = model(random_tokens(V, (2, 3)), model.begin_state(batch_size=2, ctx=CPU))
    assert sizes["logits (steps * batch x vocabulary)"] == logits.size
    assert sizes["output layer (hidden x vocabulary)"] == arrays[-2].size
    if embed:
        assert sizes["embedding (vocabulary x embed)"] == (arrays[0].size if name.endswith("bptt")
                                                           else model.embedding.weight.data().size)
    if name.startswith("gluon"):
        assert sizes["fused layer's flat weights"] == model.rnn.flat.data().size
    else:
        gates = CELLS[MODELS[name].cell].gates
        first = arrays[1 if embed else 0:][0:3 * gates:3]  # the first layer's W_x, one per gate
        assert sizes["first layer's input weights"] == sum(a.size for a in first)


def test_check_fits_refuses_at_2_to_the_31_elements(monkeypatch):
    monkeypatch.setattr(registry, "_available_bytes", lambda: None)  # this test is about MXNet's limit only
    check_fits("rnn-bptt", vocab_size=1, num_hiddens=1, batch_size=MAX_ELEMENTS)  # 2^31 - 1 logits: allowed
    with pytest.raises(ValueError, match=r"logits .* 2,147,483,648 numbers; MXNet's limit is 2,147,483,647"):
        check_fits("rnn-bptt", vocab_size=1, num_hiddens=1, batch_size=MAX_ELEMENTS + 1)
    with pytest.raises(ValueError, match=r"output layer \(hidden x vocabulary\) would hold 2,147,483,648"):
        check_fits("rnn-bptt", vocab_size=2 ** 16, num_hiddens=2 ** 15, embed_size=1)
    # the fused layer's flat weights: 2^15 (2^16 + 2^15 + 2)
    with pytest.raises(ValueError, match=r"fused layer's flat weights would hold 3,221,291,008"):
        check_fits("gluon-rnn", vocab_size=2 ** 16, num_hiddens=2 ** 15)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def test_check_fits_refuses_without_allocating_anything():
    """A 2^31-element float32 tensor is 8 GB: had it been allocated (and touched) the peak RSS would
    jump and the call would take seconds. The refusal costs neither."""
    before, start = _peak_rss_mb(), time.perf_counter()
    for _ in range(100):
        with pytest.raises(ValueError, match="MXNet's limit"):
            check_fits("lstm-bptt", vocab_size=2 ** 16, num_hiddens=2 ** 15, batch_size=32, num_steps=35)
    assert time.perf_counter() - start < 1.0 and _peak_rss_mb() - before < 50


def test_check_fits_refuses_what_the_machine_cannot_hold(monkeypatch):
    monkeypatch.setattr(registry, "_available_bytes", lambda: 2 ** 30)  # 1 GiB free
    check_fits("lstm", vocab_size=65, num_hiddens=256, batch_size=32, num_steps=35)  # the homework's size
    with pytest.raises(ValueError, match=r"need about .* GiB of memory; the machine has 1.0 GiB available"):
        check_fits("lstm-bptt", vocab_size=65, num_hiddens=4096, num_layers=4, batch_size=256, num_steps=100)
    monkeypatch.setattr(registry, "_available_bytes", lambda: None)  # unknown: only MXNet's limit applies
    check_fits("lstm-bptt", vocab_size=65, num_hiddens=4096, num_layers=4, batch_size=256, num_steps=100)
    assert nd.zeros(1).size == 1  # nothing above touched MXNet's allocator
