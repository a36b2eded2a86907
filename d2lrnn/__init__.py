"""d2lrnn: the STAT 157 / Dive into Deep Learning RNN lecture as a package (`import d2lrnn as d2l`)."""
from . import _compat  # noqa: F401  (restores numpy.bool before anything imports MXNet)

from .data import (CORPORA, DATA_SHA1, DATA_URL, DataError, corpus_from_text, data_iter_consecutive,
                   data_iter_random, encode_text, get_corpus_path, load_data_time_machine,
                   load_data_tiny_shakespeare, preprocess, to_onehot)
from .model import RNNModel, ScratchModel, get_params, init_rnn_state, rnn
from .gated import get_gru_params, get_lstm_params, gru, init_gru_state, init_lstm_state, lstm
from .registry import MODELS, build_model, scratch_functions
from .optim import SGD, Adam, global_norm, grad_clipping, sgd
from .generation import generate, predict_rnn, predict_rnn_gluon, sample_rnn
from .training import (History, KeepBest, evaluate_perplexity, train, train_and_predict_rnn, train_and_predict_rnn_gluon,
                    train_epoch)
from .checkpoint import load_checkpoint, pretrained, save_checkpoint
from .baselines import bits_per_char, ngram_perplexity
from .gradients import param_grad_norms, state_grad_norms
from .plot import plain_log_ticks, plot_perplexity
from .utils import UserError, set_seed, try_all_gpus, try_gpu

__version__ = "0.2.0"

__all__ = [
    # the lecture's helpers (COURSE_FACTS §1), same names and positional signatures
    "load_data_time_machine", "data_iter_random", "data_iter_consecutive", "to_onehot", "get_params",
    "init_rnn_state", "rnn", "predict_rnn", "grad_clipping", "sgd", "train_and_predict_rnn", "RNNModel",
    "predict_rnn_gluon", "train_and_predict_rnn_gluon", "try_gpu", "try_all_gpus",
    # data
    "CORPORA", "DATA_SHA1", "DATA_URL", "DataError", "corpus_from_text", "encode_text", "get_corpus_path",
    "load_data_tiny_shakespeare", "preprocess",
    # models: the interface, gated cells, the registry
    "ScratchModel", "get_gru_params", "gru", "init_gru_state", "get_lstm_params", "lstm", "init_lstm_state",
    "MODELS", "build_model", "scratch_functions",
    # training, evaluation, generation, checkpoints
    "SGD", "Adam", "global_norm", "train", "train_epoch", "History", "KeepBest", "evaluate_perplexity", "generate",
    "sample_rnn", "save_checkpoint", "load_checkpoint", "pretrained",
    # analysis and plots
    "bits_per_char", "ngram_perplexity", "param_grad_norms", "state_grad_norms", "plot_perplexity",
    "plain_log_ticks",
    "UserError", "set_seed",
]
