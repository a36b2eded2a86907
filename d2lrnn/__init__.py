"""d2lrnn: the STAT 157 / Dive into Deep Learning RNN lecture as a package (`import d2lrnn as d2l`)."""
from . import _compat  # noqa: F401  (restores numpy.bool before MXNet loads)

from .data import (DATA_SHA1, DATA_URL, DataError, corpus_from_text, data_iter_consecutive,
                   data_iter_random, get_corpus_path, load_data_time_machine, to_onehot)
from .model import RNNModel, get_params, init_rnn_state, rnn
from .generate import predict_rnn, predict_rnn_gluon
from .train import (History, evaluate_perplexity, grad_clipping, sgd, train_and_predict_rnn,
                    train_and_predict_rnn_gluon, train_epoch, train_epoch_gluon)
from .gated import gru, get_gru_params, get_lstm_params, init_gru_state, init_lstm_state, lstm
from .sampling import sample_rnn
from .baselines import bits_per_char, ngram_perplexity
from .gradients import param_grad_norms, state_grad_norms
from .plot import plot_perplexity
from .utils import set_seed, try_all_gpus, try_gpu

__version__ = "0.1.0"
