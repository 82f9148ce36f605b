"""Tiled attention with the online softmax: the algorithm of FlashAttention, in plain
PyTorch.

Chapter 6's ``attention`` builds the whole ``(T_q, T_k)`` matrix of scores and then its
softmax, so its memory grows as ``T^2``. The softmax of a row can instead be computed
one block of keys at a time, keeping for each query only a running maximum ``m``, a
running sum ``l`` of exponentials and a running weighted sum of values, all rescaled
whenever the maximum grows (Milakov & Gimelshein, 2018, the "online softmax"; Dao et
al., 2022, FlashAttention, Algorithm 1). The result is exact, not an approximation, and
only one ``(block_q, block_k)`` tile of scores exists at a time, so the memory grows as
``T``.

This module shows the algorithm; it is not fast. FlashAttention's speed on a GPU comes
from keeping each tile in on-chip memory inside one fused kernel, which a Python loop of
PyTorch operations cannot do. ``peak_allocated_bytes`` measures what each version
allocates, with ``torch.profiler``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from dlbook.utils import check_positive_int


def online_softmax_update(
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    scores: torch.Tensor,
    v_block: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold one block of keys into the running softmax of each query (the online
    softmax; Dao et al., 2022, Algorithm 1, lines 9-12).

    Args:
        state: ``(row_max, row_sum, acc)``: the largest score seen so far ``m``
            (..., B_q), the sum ``l`` of ``exp(score - m)`` over the keys seen
            (..., B_q), and the sum of ``exp(score - m) * value`` (..., B_q, d_v).
            Start from ``(-inf, 0, 0)``.
        scores: (..., B_q, B_k) scaled scores of this block; ``-inf`` hides a key.
        v_block: (..., B_k, d_v) the block's values.

    Returns:
        The new ``(row_max, row_sum, acc)``; after the last block, ``acc / row_sum`` is
        the attention output. Every query must see at least one key in its first
        block (else its ``row_max`` stays ``-inf`` and the next update divides 0 by 0).
    """
    row_max, row_sum, acc = state
    new_max = torch.maximum(row_max, scores.amax(dim=-1))  # (..., B_q)
    rescale = torch.exp(row_max - new_max)  # (..., B_q): old terms used the old max
    p = torch.exp(scores - new_max[..., None])  # (..., B_q, B_k), each <= 1
    row_sum = rescale * row_sum + p.sum(dim=-1)
    acc = rescale[..., None] * acc + p @ v_block  # (..., B_q, d_v)
    return new_max, row_sum, acc


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    block_q: int = 64,
    block_k: int = 64,
) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d)) V`` one ``(block_q, block_k)`` tile at a time.

    Args:
        q: (..., T_q, d) queries.
        k: (..., T_k, d) keys.
        v: (..., T_k, d_v) values.
        causal: hide the keys after each query's position (needs ``T_q == T_k``).
        block_q, block_k: rows and columns of a tile of scores.

    Returns:
        (..., T_q, d_v), equal to
        ``scaled_dot_product_attention(q, k, v, is_causal=causal)``.
    """
    check_positive_int(block_q, "block_q")
    check_positive_int(block_k, "block_k")
    if q.dim() < 2 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"need q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v), got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    T_q, T_k = q.shape[-2], k.shape[-2]
    if causal and T_q != T_k:
        raise ValueError(f"causal attention needs T_q == T_k, got {T_q} and {T_k}")
    out = q.new_empty(*q.shape[:-1], v.shape[-1])  # (..., T_q, d_v)
    for i in range(0, T_q, block_q):
        q_tile = q[..., i : i + block_q, :] / math.sqrt(q.shape[-1])  # (..., B_q, d)
        rows = torch.arange(i, i + q_tile.shape[-2], device=q.device)  # (B_q,)
        state = (
            q.new_full(q_tile.shape[:-1], float("-inf")),  # row_max: (..., B_q)
            q.new_zeros(q_tile.shape[:-1]),  # row_sum: (..., B_q)
            q.new_zeros(*q_tile.shape[:-1], v.shape[-1]),  # acc: (..., B_q, d_v)
        )
        keys_end = min(T_k, i + len(rows)) if causal else T_k  # later keys: all hidden
        for j in range(0, keys_end, block_k):
            # (..., B_q, B_k)
            scores = q_tile @ k[..., j : j + block_k, :].transpose(-2, -1)
            if causal:
                cols = torch.arange(j, j + scores.shape[-1], device=q.device)  # (B_k,)
                scores = scores.masked_fill(cols[None] > rows[:, None], float("-inf"))
            state = online_softmax_update(state, scores, v[..., j : j + block_k, :])
        _, row_sum, acc = state
        out[..., i : i + block_q, :] = acc / row_sum[..., None]
    return out


def peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """The peak of the bytes that ``fn()`` holds allocated on the CPU at once.

    ``torch.profiler`` with ``profile_memory=True`` records every allocation and every
    free of a tensor's memory, with its size and time. Summing them in time order gives
    the bytes held at each moment since ``fn`` started; the largest is the peak. Memory
    allocated before the call (the inputs) is not counted; what ``fn`` returns is.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
        del result
    events = prof.profiler.kineto_results.events()
    changes = sorted(
        (e.start_ns(), e.nbytes())
        for e in events
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    held, peak = 0, 0
    for _, nbytes in changes:
        held += nbytes  # negative for a free
        peak = max(peak, held)
    return peak
