"""The recurrent cells, one module each (rnn_cell, gru_cell, lstm_cell), each written three ways side by side:

* the lecture's step function (`rnn`, `gru`, `lstm`) with its `get_params` and `init_*_state`: readable,
  one time step at a time, trained with autograd;
* a batched forward over one layer (`*_forward`): the input projection of all steps computed before the
  loop, the recurrent products of all gates as one product per step;
* its backward pass through time written by hand (`*_backward`), used by `batched.BatchedModel`.

`ops` holds the helpers they share. Tests keep the three forms equal (outputs and gradients).
"""
from dataclasses import dataclass

from .gru_cell import get_gru_params, gru, gru_backward, gru_forward, init_gru_state
from .lstm_cell import get_lstm_params, init_lstm_state, lstm, lstm_backward, lstm_forward
from .rnn_cell import get_params, init_rnn_state, rnn, rnn_backward, rnn_forward


@dataclass(frozen=True)
class Cell:
    """One cell's three forms and its sizes."""

    step: object        # the lecture's function: (inputs, state, params) -> (outputs, state)
    get_params: object  # (vocab_size, num_hiddens, ctx) -> the lecture's parameter list
    init_state: object  # (batch_size, num_hiddens, ctx) -> the state tuple
    forward: object     # batched forward over one layer
    backward: object    # its backward pass by hand
    gates: int          # weight blocks per layer: 1 (tanh), 3 (GRU), 4 (LSTM)
    state_arrays: int   # arrays in the state: 1 (H), or 2 (H, C) for the LSTM


CELLS = {
    "rnn": Cell(rnn, get_params, init_rnn_state, rnn_forward, rnn_backward, gates=1, state_arrays=1),
    "gru": Cell(gru, get_gru_params, init_gru_state, gru_forward, gru_backward, gates=3, state_arrays=1),
    "lstm": Cell(lstm, get_lstm_params, init_lstm_state, lstm_forward, lstm_backward, gates=4,
                 state_arrays=2),
}

__all__ = ["CELLS", "Cell", "get_params", "init_rnn_state", "rnn", "get_gru_params", "init_gru_state", "gru",
           "get_lstm_params", "init_lstm_state", "lstm"]
