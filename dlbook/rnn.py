"""Recurrent networks: RNN, LSTM and GRU cells from scratch, a character-level LSTM language
model, and an encoder-decoder for sequence-to-sequence tasks.

The cells hold their weights as explicit matrices named as in chapter 5's equations and are
unrolled over time by ``rnn_unroll``; tests check them against ``torch.nn.RNN``, ``nn.LSTM`` and
``nn.GRU``. The two models (``CharLSTM``, ``Seq2Seq``) use PyTorch's fused ``nn.LSTM`` for speed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from dlbook.sampling import sample_next
from dlbook.text import (
    BOS,
    EOS,
    N_SPECIAL,
    PAD,
    Seq2SeqData,
    make_seq2seq_data,
    sequence_matches,
)

with warnings.catch_warnings():
    # Without ipywidgets, tqdm.auto warns once ("IProgress not found") and falls back to a text
    # bar, which is what the printed book wants; the warning is silenced.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


def _uniform(*shape: int, bound: float) -> nn.Parameter:
    """A parameter drawn from U(-bound, bound), PyTorch's initialization for recurrent layers."""
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


def _check_torch_layer(layer: nn.RNNBase, kind: type) -> None:
    """Only a one-layer, one-directional layer of the right kind maps onto a single cell."""
    if not isinstance(layer, kind):
        raise TypeError(f"expected an nn.{kind.__name__}, got {type(layer).__name__}")
    if layer.num_layers != 1 or layer.bidirectional or not layer.bias or layer.proj_size:
        raise ValueError("only a one-layer, one-directional layer with biases and no projection "
                         f"maps onto a cell, got {layer}")
    if getattr(layer, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"RNNCell uses tanh, got nonlinearity={layer.nonlinearity!r}")


def _check_step(x: torch.Tensor, input_size: int) -> None:
    if x.dim() != 2 or x.shape[1] != input_size:
        raise ValueError(f"x must have shape (B, {input_size}), got {tuple(x.shape)}")


class RNNCell(nn.Module):
    """Elman's recurrent cell: ``h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)`` (Elman, 1990)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        self.W_xh = _uniform(input_size, hidden_size, bound=bound)
        self.W_hh = _uniform(hidden_size, hidden_size, bound=bound)
        self.b_h = _uniform(hidden_size, bound=bound)

    def init_state(self, batch_size: int, device: torch.device | None = None) -> torch.Tensor:
        """The zero state ``h_0``, shape (B, H)."""
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.W_hh.dtype)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One time step: x (B, I), h (B, H) -> the new h (B, H)."""
        _check_step(x, self.input_size)
        return torch.tanh(x @ self.W_xh + h @ self.W_hh + self.b_h)

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> RNNCell:
        """A cell with the weights of a one-layer ``nn.RNN`` (whose two biases add up to b_h)."""
        _check_torch_layer(rnn, nn.RNN)
        cell = cls(rnn.input_size, rnn.hidden_size)
        cell = cell.to(rnn.weight_hh_l0.device, rnn.weight_hh_l0.dtype)
        with torch.no_grad():
            cell.W_xh.copy_(rnn.weight_ih_l0.T)
            cell.W_hh.copy_(rnn.weight_hh_l0.T)
            cell.b_h.copy_(rnn.bias_ih_l0 + rnn.bias_hh_l0)
        return cell


class LSTMCell(nn.Module):
    """Long short-term memory (Hochreiter and Schmidhuber, 1997, with the forget gate of Gers
    et al., 2000). With ``[i, f, g, o] = x_t W_x + h_{t-1} W_h + b``:

    ``c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)`` and ``h_t = sigmoid(o) * tanh(c_t)``.

    ``forget_bias`` is added to the forget gate's bias at initialization (0 matches PyTorch).
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        # the four gates side by side, in PyTorch's order: input, forget, cell, output
        self.W_x = _uniform(input_size, 4 * hidden_size, bound=bound)
        self.W_h = _uniform(hidden_size, 4 * hidden_size, bound=bound)
        self.b = _uniform(4 * hidden_size, bound=bound)
        with torch.no_grad():
            self.b[hidden_size:2 * hidden_size] += forget_bias

    def init_state(self, batch_size: int,
                   device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The zero state ``(h_0, c_0)``, each (B, H)."""
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.W_h.dtype)
        return zeros, zeros.clone()

    def gates(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The input, forget, candidate and output gates (i, f, g, o), each (B, H)."""
        z = x @ self.W_x + h @ self.W_h + self.b  # (B, 4H): all four in one product
        z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)  # each (B, H)
        return torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)

    def forward(self, x: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: x (B, I), state (h, c) each (B, H) -> the new (h, c)."""
        _check_step(x, self.input_size)
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
    """Gated recurrent unit (Cho et al., 2014), in PyTorch's form: with reset gate ``r``,
    update gate ``z`` and candidate ``n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))``,
    ``h_t = (1 - z) * n + z * h_{t-1}``. The candidate needs its two biases apart.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        # reset, update and candidate side by side, in PyTorch's order
        self.W_x = _uniform(input_size, 3 * hidden_size, bound=bound)
        self.W_h = _uniform(hidden_size, 3 * hidden_size, bound=bound)
        self.b_x = _uniform(3 * hidden_size, bound=bound)
        self.b_h = _uniform(3 * hidden_size, bound=bound)

    def init_state(self, batch_size: int, device: torch.device | None = None) -> torch.Tensor:
        """The zero state ``h_0``, shape (B, H)."""
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=self.W_h.dtype)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One time step: x (B, I), h (B, H) -> the new h (B, H)."""
        _check_step(x, self.input_size)
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


def rnn_unroll(cell: nn.Module, x: torch.Tensor,
               state: State | None = None) -> tuple[torch.Tensor, State]:
    """Apply ``cell`` at every time step, feeding each step's state to the next.

    Args:
        cell: an ``RNNCell``, ``LSTMCell`` or ``GRUCell``.
        x: (B, T, I) inputs.
        state: the initial state; zeros when None.

    Returns:
        ``(hs, state)``: hs (B, T, H) the hidden states h_1..h_T, and the final state.
    """
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, T, I), got {tuple(x.shape)}")
    if state is None:
        state = cell.init_state(x.shape[0], device=x.device)
    hs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        hs.append(_hidden(state))
    return torch.stack(hs, dim=1), state  # (B, T, H)


def hidden_grad_norms(cell: nn.Module, x: torch.Tensor,
                      loss_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """How strongly a loss at the last step reaches back to each earlier hidden state.

    Unrolls ``cell`` over x (B, T, I) from the zero state, computes ``L = loss_fn(h_T)`` and
    returns the (T,) norms ``||dL/dh_t||`` for t = 1..T. By the chain rule (backpropagation
    through time) ``dL/dh_t = dL/dh_T * prod_{s=t+1..T} dh_s/dh_{s-1}``, a product of T - t
    Jacobians, which is why the norms shrink or grow geometrically with the distance T - t.
    """
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, T, I), got {tuple(x.shape)}")
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


class CharLSTM(nn.Module):
    """Embedding, LSTM, then a linear read-out of next-character logits at every step."""

    def __init__(self, config: CharLSTMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_size, config.n_layers,
                            batch_first=True, dropout=config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, idx: torch.Tensor,
                state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """idx (B, T) character ids -> (logits (B, T, V), final state (h, c))."""
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be (B, T) int64, got {tuple(idx.shape)} {idx.dtype}")
        hs, state = self.lstm(self.embed(idx), state)  # hs: (B, T, H)
        return self.head(hs), state

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue each prompt in idx (B, T0) by ``max_new_tokens`` sampled characters.

        The prompt is read once; afterwards each step feeds only the last character and the
        carried state, so a step costs the same however long the text already is.
        Returns (B, T0 + max_new_tokens).
        """
        if idx.dim() != 2 or idx.shape[1] < 1:
            raise ValueError(f"idx must be (B, T0) with T0 >= 1, got {tuple(idx.shape)}")
        was_training = self.training
        self.eval()
        logits, state = self(idx)
        out = [idx]
        for _ in range(max_new_tokens):
            nxt = sample_next(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
            out.append(nxt[:, None])
            logits, state = self(nxt[:, None], state)
        self.train(was_training)
        return torch.cat(out, dim=1)


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Sizes of an LSTM encoder-decoder (Sutskever et al., 2014) without attention."""

    vocab_size: int  # tokens of source and target, special tokens included
    embed_dim: int = 32  # size of each token's embedding
    hidden_size: int = 128  # H: the whole input must fit into the final (h, c) of this size
    n_layers: int = 1  # LSTM layers in the encoder and in the decoder


class Seq2Seq(nn.Module):
    """The encoder reads the source; its final state, a fixed-size context, starts the decoder."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        c = config
        self.src_embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=PAD)
        self.encoder = nn.LSTM(c.embed_dim, c.hidden_size, c.n_layers, batch_first=True)
        self.decoder = nn.LSTM(c.embed_dim, c.hidden_size, c.n_layers, batch_first=True)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)

    def encode(self, src: torch.Tensor,
               src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) padded, src_len (B,) -> the final (h, c), each (n_layers, B, H).

        Packing makes the LSTM stop at each row's own length, so padding never enters the state.
        """
        if src.dim() != 2 or src_len.shape != (src.shape[0],):
            raise ValueError(f"src must be (B, S) and src_len (B,), got {tuple(src.shape)} "
                             f"and {tuple(src_len.shape)}")
        embedded = self.src_embed(src)  # (B, S, E)
        if bool((src_len == src.shape[1]).all()):  # no padding: the faster unpacked kernel
            _, state = self.encoder(embedded)
        else:
            packed = pack_padded_sequence(embedded, src_len.cpu(), batch_first=True,
                                          enforce_sorted=False)
            _, state = self.encoder(packed)
        return state

    def forward(self, src: torch.Tensor, src_len: torch.Tensor,
                tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: the decoder reads the true previous tokens tgt_in (B, L), starting
        with BOS, and returns logits (B, L, V) for the next target token at each step."""
        hs, _ = self.decoder(self.tgt_embed(tgt_in), self.encode(src, src_len))  # (B, L, H)
        return self.head(hs)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_len: torch.Tensor,
                      max_len: int) -> torch.Tensor:
        """Decode by feeding back the most likely token; returns (B, max_len) ids, PAD after EOS."""
        state = self.encode(src, src_len)
        token = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_len):
            hs, state = self.decoder(self.tgt_embed(token), state)  # (B, 1, H)
            token = self.head(hs).argmax(dim=-1)  # (B, 1)
            out.append(token[:, 0].masked_fill(done, PAD))
            done |= token[:, 0] == EOS
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)


@dataclass(frozen=True)
class Seq2SeqTrainConfig:
    """How to train a ``Seq2Seq`` on freshly generated examples (no example is seen twice)."""

    steps: int = 1000  # optimizer steps, one new batch each
    batch_size: int = 64  # examples per batch
    lr: float = 3e-3  # Adam learning rate
    grad_clip: float | None = 1.0  # max gradient norm (Pascanu et al., 2013), None for none
    min_len: int = 1  # shortest training input
    max_len: int = 16  # longest training input
    n_symbols: int = 10  # letters the strings are made of
    task: str = "reverse"  # "reverse", "copy" or "sort"
    seed: int = 0  # seeds the data stream
    progress: bool = True  # show a progress bar

    def __post_init__(self):
        for name in ("steps", "batch_size", "min_len", "max_len", "n_symbols"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.min_len > self.max_len:
            raise ValueError(f"need min_len <= max_len, got {self.min_len} > {self.max_len}")


def train_seq2seq(model: Seq2Seq, config: Seq2SeqTrainConfig) -> list[float]:
    """Train with teacher forcing and cross-entropy on every target token; returns the losses.

    Each batch has one input length, drawn uniformly from ``min_len..max_len``.
    """
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses = []
    model.train()
    for _ in tqdm(range(config.steps), disable=not config.progress, desc="seq2seq"):
        # one length per batch ("bucketing"): no padding, so no wasted steps
        length = int(torch.randint(config.min_len, config.max_len + 1, (1,), generator=gen))
        data = make_seq2seq_data(config.batch_size, length, length, config.n_symbols,
                                 config.task, generator=gen)
        losses.append(teacher_forcing_step(model, opt, data, config.grad_clip))
    return losses


def teacher_forcing_step(model: nn.Module, opt: torch.optim.Optimizer, data: Seq2SeqData,
                         grad_clip: float | None) -> float:
    """One update of an encoder-decoder ``model(src, src_len, tgt_in)`` on a batch: the
    decoder reads the true previous tokens and is scored on every next one (padding ignored).
    Shared by chapter 5's ``Seq2Seq`` and chapter 6's ``Transformer``; returns the loss."""
    if not isinstance(data, Seq2SeqData):
        raise TypeError(f"data must be a Seq2SeqData (see make_seq2seq_data), "
                        f"got {type(data).__name__}")
    device = next(model.parameters()).device
    src, src_len, tgt = data.src.to(device), data.src_len.to(device), data.tgt.to(device)
    logits = model(src, src_len, tgt[:, :-1])  # (B, L, V)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(),
                                       ignore_index=PAD)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def accuracy_by_length(model: Seq2Seq, lengths: list[int], n_per_length: int = 200,
                       n_symbols: int = 10, task: str = "reverse",
                       seed: int = 1) -> dict[int, float]:
    """Exact-match accuracy of greedy decoding on ``n_per_length`` new inputs of each length."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    accuracy = {}
    for length in lengths:
        data = make_seq2seq_data(n_per_length, length, length, n_symbols, task, generator=gen)
        pred = model.greedy_decode(data.src.to(device), data.src_len.to(device), length + 1)
        accuracy[length] = sequence_matches(pred.cpu(), data.tgt[:, 1:]).float().mean().item()
    return accuracy


def seq2seq_vocab_size(n_symbols: int) -> int:
    """Tokens a task over ``n_symbols`` letters needs: the letters plus PAD, BOS and EOS."""
    return N_SPECIAL + n_symbols
