"""d2lrnn: the STAT 157 / Dive into Deep Learning RNN lecture as a package (`import d2lrnn as d2l`).

Names load on first use (`d2l.rnn` imports d2lrnn.cells, and MXNet with it), so `import d2lrnn` is
instant and `python -m d2lrnn` can choose MXNet's thread settings and handle Ctrl-C before MXNet loads.
"""
import importlib
import importlib.util

from . import _compat

__version__ = "0.3.0"

_compat.install()  # numpy.bool restored before MXNet loads, whoever imports it first

_EXPORTS = {
    # the lecture's helpers (COURSE_FACTS §1), same names and positional signatures
    "data": ["load_data_time_machine", "data_iter_random", "data_iter_consecutive", "to_onehot",
             "CORPORA", "DATA_SHA1", "DATA_URL", "DataError", "TextSource", "corpus_from_text", "encode_text",
             "get_corpus_path", "load_data_tiny_shakespeare", "load_split", "preprocess"],
    "cells": ["get_params", "init_rnn_state", "rnn", "get_gru_params", "init_gru_state", "gru",
              "get_lstm_params", "init_lstm_state", "lstm", "CELLS"],
    "cells.batched": ["BatchedModel"],
    "model": ["RNNModel", "ScratchModel"],
    "registry": ["MODELS", "build_model", "scratch_functions"],
    "optim": ["SGD", "Adam", "global_norm", "grad_clipping", "sgd"],
    "generation": ["generate", "predict_rnn", "predict_rnn_gluon", "sample_rnn"],
    "training": ["History", "Hook", "KeepBest", "LRSchedule", "Preview", "Progress", "TrainOptions",
                 "evaluate_perplexity", "train", "train_and_predict_rnn", "train_and_predict_rnn_gluon",
                 "train_epoch"],
    "checkpoint": ["load_checkpoint", "pretrained", "save_checkpoint"],
    "baselines": ["bits_per_char", "ngram_perplexity"],
    "gradients": ["param_grad_norms", "state_grad_norms"],
    "plot": ["plain_log_ticks", "plot_perplexity"],
    "utils": ["UserError", "set_seed", "try_all_gpus", "try_gpu"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_WHERE)


def __getattr__(name):
    """Load a public name (or a submodule, e.g. d2lrnn.data) the first time it is asked for."""
    if name not in _WHERE:
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'd2lrnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
