"""Backpropagation through time written out (chapter 5), and truncated BPTT on
contiguous text.

``rnn_bptt`` is the backward pass of an Elman network (``dlbook.rnn.RNNCell``) by hand:
the error is carried backwards one step at a time, and every weight gradient is a *sum
over time steps* of one outer product per step. The tests check it against autograd.

``stream_batches`` and ``TruncatedBPTTLoss`` train a recurrent language model with
*truncated*
BPTT (Williams and Peng, 1990; Sutskever, 2013): the text is read in order, as B
parallel streams, and the state at the end of one chunk starts the next chunk,
*detached*, so that the forward pass remembers across chunks while the gradient stops at
the chunk's start. ``evaluate_stateful`` scores a model the same way.
``dlbook.text.train_char_lm`` instead starts every random window from the zero state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from dlbook.rnn import RNNCell
from dlbook.utils import check_positive_int


@dataclass
class BPTTGrads:
    """The gradients of a loss with respect to an ``RNNCell``'s weights and its initial
    state."""

    W_xh: torch.Tensor  # (C, H)
    W_hh: torch.Tensor  # (H, H), the sum of ``W_hh_per_step`` over t
    b_h: torch.Tensor  # (H,)
    h0: torch.Tensor  # (B, H)
    W_hh_per_step: torch.Tensor  # (T, H, H): step t's term h_{t-1}^T delta_t


def rnn_bptt(
    cell: RNNCell, x: torch.Tensor, grad_h: torch.Tensor, h0: torch.Tensor | None = None
) -> BPTTGrads:
    """Backpropagation through time for ``h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)``,
    by hand.

    Args:
        cell: the Elman cell.
        x: (B, T, C) inputs.
        grad_h: (B, T, H), the loss's *direct* gradient with respect to each h_t (for a
            loss on the last step only, zero except at t = T).
        h0: (B, H) initial state; zeros when None.

    Going backwards, the total gradient at h_t is its direct part plus what flows back
    from h_{t+1}; through the tanh it becomes
    ``delta_t = dL/da_t = (dL/dh_t) * (1 - h_t^2)``, and

        dL/dW_hh = sum_t h_{t-1}^T delta_t,  dL/dW_xh = sum_t x_t^T delta_t,
        dL/db_h = sum_t sum_b delta_t,       dL/dh_{t-1} = delta_t W_hh^T + direct part.
    """
    if x.dim() != 3 or grad_h.shape != (*x.shape[:2], cell.hidden_size):
        raise ValueError(
            f"x must be (B, T, C) and grad_h (B, T, {cell.hidden_size}), "
            f"got "
            f"{tuple(x.shape)} and {tuple(grad_h.shape)}"
        )
    with torch.no_grad():
        h = cell.init_state(x.shape[0], device=x.device) if h0 is None else h0
        hs = [h]  # h_0 .. h_T
        for t in range(x.shape[1]):
            hs.append(cell(x[:, t], hs[-1]))
        W_hh = cell.W_hh
        dW_xh, db = torch.zeros_like(cell.W_xh), torch.zeros_like(cell.b_h)
        per_step = torch.zeros(
            x.shape[1], *W_hh.shape, dtype=W_hh.dtype, device=W_hh.device
        )
        carry = torch.zeros_like(hs[0])  # dL/dh_t arriving from step t + 1
        for t in range(x.shape[1], 0, -1):
            delta = (grad_h[:, t - 1] + carry) * (1 - hs[t] ** 2)  # (B, H): dL/da_t
            per_step[t - 1] = hs[t - 1].T @ delta  # (H, H)
            dW_xh += x[:, t - 1].T @ delta
            db += delta.sum(0)
            carry = delta @ W_hh.T  # (B, H): dL/dh_{t-1} through step t
    return BPTTGrads(
        W_xh=dW_xh, W_hh=per_step.sum(0), b_h=db, h0=carry, W_hh_per_step=per_step
    )


def stream_batches(
    data: torch.Tensor, block_size: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The text as ``batch_size`` parallel streams, read ``block_size`` characters at a
    time.

    ``data`` (N,) is cut into B equal, contiguous parts; row b of consecutive batches
    holds consecutive chunks of part b, so a state carried from one batch to the next
    continues the same text. When the parts are used up, reading starts again from their
    beginnings (the caller then sees a jump, as at an epoch boundary). Yields (x, y),
    each (B, T).
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise ValueError(
            f"data must be a 1-D tensor of ids, got {getattr(data, 'shape', data)!r}"
        )
    for name, value in (("block_size", block_size), ("batch_size", batch_size)):
        check_positive_int(value, name)
    part = (len(data) - 1) // batch_size
    n_chunks = part // block_size
    if n_chunks < 1:
        raise ValueError(
            f"data of {len(data)} ids is too short for {batch_size} "
            f"streams of "
            f"at least block_size={block_size} + 1 ids"
        )
    starts = torch.arange(batch_size) * part  # (B,)
    offsets = torch.arange(block_size + 1)  # (T + 1,)
    while True:
        for chunk in range(n_chunks):
            window = data[starts[:, None] + chunk * block_size + offsets]  # (B, T + 1)
            yield window[:, :-1], window[:, 1:]


class TruncatedBPTTLoss:
    """The next-character loss of a recurrent model whose state is carried between
    batches.

    Called as ``loss_fn(model, (x, y))`` by ``dlbook.train.fit``. The model must take
    and return a state, ``logits, state = model(x, state)`` (``CharLSTM`` does). After
    each batch the final state is kept *detached*: the next batch starts from it, but
    the gradient of the next loss stops there, so backpropagation runs through at most
    ``block_size`` steps.
    """

    def __init__(self) -> None:
        self.state: tuple[torch.Tensor, ...] | None = None

    def __call__(
        self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        device = next(model.parameters()).device
        x, y = batch[0].to(device), batch[1].to(device)
        logits, state = model(x, self.state)  # (B, T, V)
        # truncate: no gradient into the past
        self.state = tuple(s.detach() for s in state)
        return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


@torch.no_grad()
def evaluate_stateful(
    model: nn.Module, data: torch.Tensor, block_size: int, batch_size: int = 16
) -> float:
    """Mean next-character cross-entropy (nats) on ``data`` read as ``batch_size``
    streams, the state carried from chunk to chunk, so every prediction sees all the
    text before it in its stream. One pass over the streams; ``model(x, state)`` must
    return ``(logits, state)``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n_chunks = ((len(data) - 1) // batch_size) // block_size
    state, total = None, 0.0
    # endless: take n_chunks of them
    chunks = stream_batches(data, block_size, batch_size)
    for _, (x, y) in zip(range(n_chunks), chunks, strict=False):
        logits, state = model(x.to(device), state)
        total += nn.functional.cross_entropy(
            logits.flatten(0, 1), y.to(device).flatten(), reduction="sum"
        ).item()
    model.train(was_training)
    return total / (n_chunks * batch_size * block_size)
