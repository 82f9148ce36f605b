"""Recurrent networks: RNN, LSTM and GRU cells from scratch, and a character-level LSTM
language model. The LSTM encoder-decoder built from them is in ``dlbook.seq2seq``.

The cells hold their weights as explicit matrices named as in chapter 5's equations and
are unrolled over time by ``rnn_unroll``; tests check them against ``torch.nn.RNN``,
``nn.LSTM`` and ``nn.GRU``. ``CharLSTM`` uses PyTorch's fused ``nn.LSTM`` for speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import nn

from dlbook.sampling import check_sampling_options, sample_next
from dlbook.utils import check_ids, check_int, check_positive_int, check_real

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


def _uniform(*shape: int, bound: float) -> nn.Parameter:
    """A parameter drawn from U(-bound, bound), PyTorch's initialization for recurrent
    layers."""
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


def _check_torch_layer(layer: nn.RNNBase, kind: type) -> None:
    """Only a one-layer, one-directional layer of the right kind maps onto a single
    cell."""
    if not isinstance(layer, kind):
        raise TypeError(f"expected an nn.{kind.__name__}, got {type(layer).__name__}")
    if (
        layer.num_layers != 1
        or layer.bidirectional
        or not layer.bias
        or layer.proj_size
    ):
        raise ValueError(
            "only a one-layer, one-directional layer with biases and no "
            "projection "
            f"maps onto a cell, got {layer}"
        )
    if getattr(layer, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"RNNCell uses tanh, got nonlinearity={layer.nonlinearity!r}")


def _check_sizes(input_size: int, hidden_size: int) -> None:
    check_positive_int(input_size, "input_size")
    check_positive_int(hidden_size, "hidden_size")


def _check_step(x: torch.Tensor, input_size: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"x must be a tensor of shape (B, {input_size}), got {type(x).__name__}"
        )
    if x.dim() != 2 or x.shape[1] != input_size:
        raise ValueError(f"x must have shape (B, {input_size}), got {tuple(x.shape)}")


def _check_hidden(h: torch.Tensor, name: str, batch: int, hidden_size: int) -> None:
    """A recurrent state must be one (B, H) tensor whose batch matches the input's."""
    if not isinstance(h, torch.Tensor):
        raise TypeError(
            f"{name} must be a tensor of shape ({batch}, {hidden_size}), "
            f"got {type(h).__name__}"
        )
    if tuple(h.shape) != (batch, hidden_size):
        raise ValueError(
            f"{name} must have shape (B={batch}, H={hidden_size}) to "
            f"match x, "
            f"got {tuple(h.shape)}"
        )


def _check_pair(state: object, batch: int, hidden_size: int) -> None:
    """An LSTM's state must be the pair (h, c), each (B, H)."""
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(
            f"state must be a pair (h, c) of ({batch}, {hidden_size}) "
            f"tensors, "
            f"got {type(state).__name__}"
        )
    _check_hidden(state[0], "h", batch, hidden_size)
    _check_hidden(state[1], "c", batch, hidden_size)


class RNNCell(nn.Module):
    """Elman's recurrent cell: ``h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)`` (Elman,
    1990)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        self.W_xh = _uniform(input_size, hidden_size, bound=bound)
        self.W_hh = _uniform(hidden_size, hidden_size, bound=bound)
        self.b_h = _uniform(hidden_size, bound=bound)

    def init_state(
        self, batch_size: int, device: torch.device | None = None
    ) -> torch.Tensor:
        """The zero state ``h_0``, shape (B, H)."""
        check_positive_int(batch_size, "batch_size")
        return torch.zeros(
            batch_size, self.hidden_size, device=device, dtype=self.W_hh.dtype
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One time step: x (B, I), h (B, H) -> the new h (B, H)."""
        _check_step(x, self.input_size)
        _check_hidden(h, "h", x.shape[0], self.hidden_size)
        return torch.tanh(x @ self.W_xh + h @ self.W_hh + self.b_h)

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> RNNCell:
        """A cell with the weights of a one-layer ``nn.RNN`` (whose two biases add up to
        b_h)."""
        _check_torch_layer(rnn, nn.RNN)
        cell = cls(rnn.input_size, rnn.hidden_size)
        cell = cell.to(rnn.weight_hh_l0.device, rnn.weight_hh_l0.dtype)
        with torch.no_grad():
            cell.W_xh.copy_(rnn.weight_ih_l0.T)
            cell.W_hh.copy_(rnn.weight_hh_l0.T)
            cell.b_h.copy_(rnn.bias_ih_l0 + rnn.bias_hh_l0)
        return cell


class LSTMCell(nn.Module):
    """Long short-term memory (Hochreiter and Schmidhuber, 1997, with the forget gate of
    Gers et al., 2000). With ``[i, f, g, o] = x_t W_x + h_{t-1} W_h + b``:

    ``c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)`` and
    ``h_t = sigmoid(o) * tanh(c_t)``.

    ``forget_bias`` is added to the forget gate's bias at initialization (0 matches
    PyTorch).
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 0.0):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        check_real(forget_bias, "forget_bias")
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        # the four gates side by side, in PyTorch's order: input, forget, cell, output
        self.W_x = _uniform(input_size, 4 * hidden_size, bound=bound)
        self.W_h = _uniform(hidden_size, 4 * hidden_size, bound=bound)
        self.b = _uniform(4 * hidden_size, bound=bound)
        with torch.no_grad():
            self.b[hidden_size : 2 * hidden_size] += forget_bias

    def init_state(
        self, batch_size: int, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The zero state ``(h_0, c_0)``, each (B, H)."""
        check_positive_int(batch_size, "batch_size")
        zeros = torch.zeros(
            batch_size, self.hidden_size, device=device, dtype=self.W_h.dtype
        )
        return zeros, zeros.clone()

    def gates(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The input, forget, candidate and output gates (i, f, g, o), each (B, H)."""
        z = x @ self.W_x + h @ self.W_h + self.b  # (B, 4H): all four in one product
        z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)  # each (B, H)
        return (
            torch.sigmoid(z_i),
            torch.sigmoid(z_f),
            torch.tanh(z_g),
            torch.sigmoid(z_o),
        )

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: x (B, I), state (h, c) each (B, H) -> the new (h, c)."""
        _check_step(x, self.input_size)
        _check_pair(state, x.shape[0], self.hidden_size)
        h, c = state
        i, f, g, o = self.gates(x, h)
        c = f * c + i * g  # forget part of the old cell, write part of the candidate
        h = o * torch.tanh(c)
        return h, c

    @classmethod
    def from_torch(cls, lstm: nn.LSTM) -> LSTMCell:
        """A cell with the weights of a one-layer ``nn.LSTM``."""
        _check_torch_layer(lstm, nn.LSTM)
        cell = cls(lstm.input_size, lstm.hidden_size)
        cell = cell.to(lstm.weight_hh_l0.device, lstm.weight_hh_l0.dtype)
        with torch.no_grad():
            cell.W_x.copy_(lstm.weight_ih_l0.T)
            cell.W_h.copy_(lstm.weight_hh_l0.T)
            cell.b.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
        return cell


class GRUCell(nn.Module):
    """Gated recurrent unit (Cho et al., 2014), in PyTorch's form: with reset gate
    ``r``, update gate ``z`` and candidate
    ``n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))``,
    ``h_t = (1 - z) * n + z * h_{t-1}``. The candidate needs its two biases apart.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        # reset, update and candidate side by side, in PyTorch's order
        self.W_x = _uniform(input_size, 3 * hidden_size, bound=bound)
        self.W_h = _uniform(hidden_size, 3 * hidden_size, bound=bound)
        self.b_x = _uniform(3 * hidden_size, bound=bound)
        self.b_h = _uniform(3 * hidden_size, bound=bound)

    def init_state(
        self, batch_size: int, device: torch.device | None = None
    ) -> torch.Tensor:
        """The zero state ``h_0``, shape (B, H)."""
        check_positive_int(batch_size, "batch_size")
        return torch.zeros(
            batch_size, self.hidden_size, device=device, dtype=self.W_h.dtype
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One time step: x (B, I), h (B, H) -> the new h (B, H)."""
        _check_step(x, self.input_size)
        _check_hidden(h, "h", x.shape[0], self.hidden_size)
        x_r, x_z, x_n = (x @ self.W_x + self.b_x).chunk(3, dim=-1)  # each (B, H)
        h_r, h_z, h_n = (h @ self.W_h + self.b_h).chunk(3, dim=-1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h

    @classmethod
    def from_torch(cls, gru: nn.GRU) -> GRUCell:
        """A cell with the weights of a one-layer ``nn.GRU``."""
        _check_torch_layer(gru, nn.GRU)
        cell = cls(gru.input_size, gru.hidden_size)
        cell = cell.to(gru.weight_hh_l0.device, gru.weight_hh_l0.dtype)
        with torch.no_grad():
            cell.W_x.copy_(gru.weight_ih_l0.T)
            cell.W_h.copy_(gru.weight_hh_l0.T)
            cell.b_x.copy_(gru.bias_ih_l0)
            cell.b_h.copy_(gru.bias_hh_l0)
        return cell


def _hidden(state: State) -> torch.Tensor:
    """The output ``h`` of a state: the state itself, or the first of ``(h, c)``."""
    return state[0] if isinstance(state, tuple) else state


def _check_sequence(cell: nn.Module, x: torch.Tensor) -> None:
    if not isinstance(cell, (RNNCell, LSTMCell, GRUCell)):
        raise TypeError(
            f"cell must be an RNNCell, LSTMCell or GRUCell, got {type(cell).__name__}"
        )
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (B, T, I) with T >= 1, got {shape}")


def rnn_unroll(
    cell: nn.Module, x: torch.Tensor, state: State | None = None
) -> tuple[torch.Tensor, State]:
    """Apply ``cell`` at every time step, feeding each step's state to the next.

    Args:
        cell: an ``RNNCell``, ``LSTMCell`` or ``GRUCell``.
        x: (B, T, I) inputs.
        state: the initial state; zeros when None.

    Returns:
        ``(hs, state)``: hs (B, T, H) the hidden states h_1..h_T, and the final state.
    """
    _check_sequence(cell, x)
    if state is None:
        state = cell.init_state(x.shape[0], device=x.device)
    hs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        hs.append(_hidden(state))
    return torch.stack(hs, dim=1), state  # (B, T, H)


def hidden_grad_norms(
    cell: nn.Module, x: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """How strongly a loss at the last step reaches back to each earlier hidden state.

    Unrolls ``cell`` over x (B, T, I) from the zero state, computes ``L = loss_fn(h_T)``
    and returns the (T,) norms ``||dL/dh_t||`` for t = 1..T. By the chain rule
    (backpropagation through time)
    ``dL/dh_t = dL/dh_T * prod_{s=t+1..T} dh_s/dh_{s-1}``, a product of T - t Jacobians,
    which is why the norms shrink or grow geometrically with the distance T - t.
    """
    _check_sequence(cell, x)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    state = cell.init_state(x.shape[0], device=x.device)
    hs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        hs.append(_hidden(state))
    grads = torch.autograd.grad(loss_fn(hs[-1]), hs)
    return torch.stack([g.norm() for g in grads]).detach()


@dataclass(frozen=True)
class CharLSTMConfig:
    """Sizes of a character-level LSTM language model."""

    vocab_size: int  # number of distinct characters
    embed_dim: int = 32  # size of each character's learned embedding
    hidden_size: int = 256  # H, the size of h_t and c_t
    n_layers: int = 1  # LSTM layers stacked on each other
    dropout: float = 0.0  # dropout between stacked layers (needs n_layers > 1)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim", "hidden_size", "n_layers"):
            check_positive_int(getattr(self, name), name)
        check_real(self.dropout, "dropout", 0.0, 1.0, high_open=True)


def check_generate_args(
    idx: torch.Tensor,
    vocab_size: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> None:
    """The checks of a language model's ``generate`` (the LSTM's here, the GPT's in
    ``dlbook.gpt``): ids (B, T0) with T0 >= 1 below ``vocab_size``, a count >= 0 of new
    tokens, and valid sampling options."""
    check_ids(idx, vocab_size)
    if idx.shape[1] < 1:
        raise ValueError(f"idx must be (B, T0) with T0 >= 1, got {tuple(idx.shape)}")
    check_int(max_new_tokens, "max_new_tokens", minimum=0)
    check_sampling_options(temperature, top_k, top_p)


class CharLSTM(nn.Module):
    """Embedding, LSTM, then a linear read-out of next-character logits at every
    step."""

    def __init__(self, config: CharLSTMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(
            config.embed_dim,
            config.hidden_size,
            config.n_layers,
            batch_first=True,
            dropout=config.dropout,
        )
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, idx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """idx (B, T) character ids -> (logits (B, T, V), final state (h, c))."""
        check_ids(idx, self.config.vocab_size)
        if state is not None:
            self._check_state(state, idx.shape[0])
        hs, state = self.lstm(self.embed(idx), state)  # hs: (B, T, H)
        return self.head(hs), state

    def _check_state(self, state: object, batch: int) -> None:
        """The state must be nn.LSTM's pair (h, c), each (n_layers, B, H)."""
        shape = (self.config.n_layers, batch, self.config.hidden_size)
        if (
            not isinstance(state, (tuple, list))
            or len(state) != 2
            or not all(isinstance(s, torch.Tensor) for s in state)
        ):
            raise TypeError(
                f"state must be a pair (h, c) of tensors of shape {shape}, "
                f"got {type(state).__name__}"
            )
        if any(tuple(s.shape) != shape for s in state):
            raise ValueError(
                f"state's h and c must each have shape (n_layers, B, H) = "
                f"{shape}, "
                f"got {tuple(state[0].shape)} and {tuple(state[1].shape)}"
            )

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue each prompt in idx (B, T0) by ``max_new_tokens`` sampled characters.

        The prompt is read once; afterwards each step feeds only the last character and
        the carried state, so a step costs the same however long the text already is.
        Returns (B, T0 + max_new_tokens).
        """
        check_generate_args(
            idx, self.config.vocab_size, max_new_tokens, temperature, top_k, top_p
        )
        was_training = self.training
        self.eval()
        logits, state = self(idx)
        out = [idx]
        for _ in range(max_new_tokens):
            # (B,)
            nxt = sample_next(logits[:, -1], temperature, top_k, top_p, generator)
            out.append(nxt[:, None])
            logits, state = self(nxt[:, None], state)
        self.train(was_training)
        return torch.cat(out, dim=1)
