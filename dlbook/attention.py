"""Attention: scaled dot-product attention, masks, multi-head attention and position
encodings.

Chapter 6 builds attention step by step: a query is compared with every key, the scores
become weights by a softmax, and the output is the weighted mean of the values (Bahdanau
et al., 2015; Vaswani et al., 2017, section 3.2). Tests check ``attention`` against
``torch.nn.functional.scaled_dot_product_attention`` and ``MultiHeadAttention`` against
``torch.nn.MultiheadAttention`` with copied weights.

Masks are boolean and broadcast to the scores' shape ``(B, n_heads, T_q, T_k)``:
``True`` means "this query may look at this key", the convention of PyTorch's
``scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlbook.utils import check_positive_int, check_real


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention, ``softmax(Q K^T / sqrt(d_k)) V`` (Vaswani et al.,
    eq. 1).

    Args:
        q: (..., T_q, d_k) queries.
        k: (..., T_k, d_k) keys.
        v: (..., T_k, d_v) values.
        mask: bool, broadcastable to (..., T_q, T_k); False hides a key from a query.
            Every query must be allowed at least one key.
        dropout_p: probability of zeroing an attention weight (training only).

    Returns:
        ``(out, weights)``: out (..., T_q, d_v) and the weights (..., T_q, T_k), whose
        rows sum to 1 (before dropout).
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    check_real(dropout_p, "dropout_p", 0.0, 1.0, high_open=True)
    if q.dim() < 2 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"need q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v), "
            f"got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a bool tensor (True = may attend), got {mask.dtype}"
        )
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = nn.functional.dropout(weights, dropout_p)
    return weights @ v, weights


def causal_mask(
    t_q: int, t_k: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """The (T_q, T_k) mask that lets each query see only keys at its own position or
    earlier.

    The queries are the *last* ``t_q`` of ``t_k`` positions, so with a key-value cache
    (``t_k`` past and present keys, ``t_q`` new queries) query i sits at position
    ``t_k - t_q + i``.
    """
    check_positive_int(t_q, "t_q")
    t_k = t_q if t_k is None else check_positive_int(t_k, "t_k")
    if not 1 <= t_q <= t_k:
        raise ValueError(f"need 1 <= t_q <= t_k, got t_q={t_q}, t_k={t_k}")
    q_pos = torch.arange(t_k - t_q, t_k, device=device)[:, None]  # (T_q, 1)
    k_pos = torch.arange(t_k, device=device)[None, :]  # (1, T_k)
    return k_pos <= q_pos


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """A (B, 1, 1, max_len) mask that hides the padding after each sequence's length.

    It broadcasts over heads and queries: no query may look at a padded key.
    """
    check_positive_int(max_len, "max_len")
    if not isinstance(lengths, torch.Tensor) or lengths.dtype != torch.long:
        raise TypeError(
            f"lengths must be an int64 tensor, got "
            f"{getattr(lengths, 'dtype', type(lengths).__name__)}"
        )
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    if bool((lengths < 1).any()) or bool((lengths > max_len).any()):
        raise ValueError(f"lengths must be in [1, {max_len}], got {lengths.tolist()}")
    # (B, S)
    keep = torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
    return keep[:, None, None, :]


class KVCache:
    """The keys and values one attention layer has already computed, for fast
    generation.

    Generating token t needs the keys and values of tokens 1..t, but only token t's are
    new; the cache keeps the others so each step projects a single token. The new keys
    are written into a buffer allocated ahead: ``max_len`` positions when given (a model
    knows its longest context), otherwise a buffer that doubles when full. Either way a
    step copies only the new token, where concatenating would copy the whole past at
    every step.
    """

    def __init__(self, max_len: int | None = None) -> None:
        self.max_len = (
            None if max_len is None else check_positive_int(max_len, "max_len")
        )
        self._k: torch.Tensor | None = None  # (B, n_heads, capacity, d_head)
        self._v: torch.Tensor | None = None  # (B, n_heads, capacity, d_head)
        self._length = 0  # positions filled

    def __len__(self) -> int:
        return self._length

    @property
    def k(self) -> torch.Tensor | None:
        """The cached keys (B, n_heads, T_past, d_head), or None before the first
        append."""
        return None if self._k is None else self._k[:, :, : self._length]

    @property
    def v(self) -> torch.Tensor | None:
        """The cached values (B, n_heads, T_past, d_head), or None before the first
        append."""
        return None if self._v is None else self._v[:, :, : self._length]

    def _check(self, k: torch.Tensor, v: torch.Tensor) -> None:
        if not isinstance(k, torch.Tensor) or not isinstance(v, torch.Tensor):
            raise TypeError(
                f"k and v must be tensors, got {type(k).__name__} and "
                f"{type(v).__name__}"
            )
        if k.dim() != 4 or k.shape != v.shape:
            raise ValueError(
                f"k and v must both have shape (B, n_heads, T_new, "
                f"d_head), got "
                f"{tuple(k.shape)} and {tuple(v.shape)}"
            )
        if self._k is not None and (
            k.shape[:2] != self._k.shape[:2] or k.shape[3] != self._k.shape[3]
        ):
            B, nh, _, hs = self._k.shape
            raise ValueError(
                f"k must have shape (B={B}, n_heads={nh}, T_new, "
                f"d_head={hs}) like "
                f"the cached keys, got {tuple(k.shape)}"
            )
        if self.max_len is not None and self._length + k.shape[2] > self.max_len:
            raise ValueError(
                f"the cache holds at most max_len={self.max_len} "
                f"positions; "
                f"{self._length} cached + {k.shape[2]} new is too many"
            )

    def _grow(self, k: torch.Tensor, needed: int) -> None:
        """Allocate a larger buffer and copy the cached part into it."""
        old = 0 if self._k is None else self._k.shape[2]
        capacity = self.max_len or max(needed, 2 * old)
        B, nh, _, hs = k.shape
        new_k = k.new_empty(B, nh, capacity, hs)  # (B, nh, capacity, hs)
        new_v = k.new_empty(B, nh, capacity, hs)
        if self._k is not None:
            new_k[:, :, : self._length] = self.k
            new_v[:, :, : self._length] = self.v
        self._k, self._v = new_k, new_v

    def append(
        self, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new tokens' k, v (B, n_heads, T_new, d_head); return all keys and
        values, each (B, n_heads, T_past + T_new, d_head)."""
        self._check(k, v)
        start, stop = self._length, self._length + k.shape[2]
        if self._k is None or stop > self._k.shape[2]:
            self._grow(k, stop)
        self._k[:, :, start:stop] = k
        self._v[:, :, start:stop] = v
        self._length = stop
        return self.k, self.v


def _check_mha_inputs(query, key, value, d_model, mask, cache, is_causal) -> None:
    """The checks of ``MultiHeadAttention.forward``, each error naming the argument."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if query.dim() != 3 or query.shape[-1] != d_model or key.shape != value.shape:
        raise ValueError(
            f"need query (B, T_q, {d_model}) and key, value of equal "
            f"shape "
            f"(B, T_k, {d_model}), got {tuple(query.shape)}, "
            f"{tuple(key.shape)}, {tuple(value.shape)}"
        )
    if key.dim() != 3 or key.shape[0] != query.shape[0] or key.shape[-1] != d_model:
        raise ValueError(
            f"key must be (B={query.shape[0]}, T_k, {d_model}) like "
            f"query, got "
            f"{tuple(key.shape)}"
        )
    if mask is not None and (
        not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
    ):
        raise TypeError(
            f"mask must be a bool tensor (True = may attend), got "
            f"{getattr(mask, 'dtype', type(mask).__name__)}"
        )
    if is_causal and mask is not None:
        raise ValueError("give either mask or is_causal=True, not both")
    if cache is not None and not isinstance(cache, KVCache):
        raise TypeError(f"cache must be a KVCache or None, got {type(cache).__name__}")


class MultiHeadAttention(nn.Module):
    """``n_heads`` attentions side by side, each in its own ``d_model / n_heads``
    subspace.

    ``MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O`` with
    ``head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)`` (Vaswani et al., section 3.2.2).
    The heads' projections are stored stacked, one ``nn.Linear`` each for Q, K, V and
    output.
    """

    def __init__(
        self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True
    ):
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(n_heads, "n_heads")
        check_real(dropout, "dropout", 0.0, 1.0, high_open=True)
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads, got {d_model} and {n_heads}"
            )
        self.d_model, self.n_heads, self.dropout = d_model, n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, n_heads, T, d_head)."""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, nh, T, hs)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from query (B, T_q, d_model) to key and value (B, T_k, d_model).

        Args:
            mask: bool, broadcastable to (B, n_heads, T_q, T_k including cached keys).
            cache: if given, the new keys and values are appended to it and the queries
                attend to everything it holds.
            need_weights: also return the weights (B, n_heads, T_q, T_k); otherwise
                PyTorch's fused ``scaled_dot_product_attention`` (the same function,
                tested) is used.
            is_causal: apply ``causal_mask(T_q, T_k)`` without building it (``mask``
                must then be None), so that the fused function can pick its causal
                kernels.

        Returns:
            ``(out, weights)``: out (B, T_q, d_model); weights or None.
        """
        _check_mha_inputs(query, key, value, self.d_model, mask, cache, is_causal)
        q = self.split_heads(self.q_proj(query))  # (B, nh, T_q, hs)
        k = self.split_heads(self.k_proj(key))  # (B, nh, T_k, hs)
        v = self.split_heads(self.v_proj(value))
        if cache is not None:
            k, v = cache.append(k, v)
        return self._attend(q, k, v, mask, need_weights, is_causal)

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        need_weights: bool,
        is_causal: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of q (B, nh, T_q, hs) over k, v (B, nh, T_k, hs), heads merged and
        projected: (B, T_q, d_model), and the weights or None."""
        dropout_p = self.dropout if self.training else 0.0
        T_q, T_k = q.shape[2], k.shape[2]
        if is_causal and (need_weights or T_q != T_k):
            # PyTorch's is_causal puts the queries at the first T_q positions, but after
            # cached keys they are the last T_q: build the mask (and for our attention,
            # which needs one)
            mask, is_causal = causal_mask(T_q, T_k, device=q.device), False
        if need_weights:
            out, weights = attention(q, k, v, mask, dropout_p)
        else:
            out, weights = (
                nn.functional.scaled_dot_product_attention(
                    q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
                ),
                None,
            )
        B = out.shape[0]
        out = out.transpose(1, 2).reshape(B, T_q, self.d_model)  # (B, T_q, d_model)
        return self.out_proj(out), weights

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of a ``torch.nn.MultiheadAttention`` (``batch_first``, equal q/k/v
        sizes)."""
        if not mha._qkv_same_embed_dim or mha.in_proj_bias is None:
            raise ValueError(
                "from_torch needs an nn.MultiheadAttention with bias and "
                "equal "
                "query, key and value sizes"
            )
        ours = cls(mha.embed_dim, mha.num_heads, mha.dropout).to(
            mha.in_proj_weight.dtype
        )
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)  # each (d_model, d_model)
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
        with torch.no_grad():
            for proj, w, b in (
                (ours.q_proj, w_q, b_q),
                (ours.k_proj, w_k, b_k),
                (ours.v_proj, w_v, b_v),
                (ours.out_proj, mha.out_proj.weight, mha.out_proj.bias),
            ):
                proj.weight.copy_(w)
                proj.bias.copy_(b)
        return ours


def sinusoidal_positions(n_positions: int, d_model: int) -> torch.Tensor:
    """The fixed (n_positions, d_model) encodings of Vaswani et al., section 3.5.

    ``PE[p, 2i] = sin(p / 10000^(2i / d_model))`` and ``PE[p, 2i + 1] = cos(...)``:
    every pair of columns is a clock turning at its own speed, from one radian per
    position down to 1/10000. Computed in float64, returned as float32.
    """
    check_positive_int(n_positions, "n_positions")
    check_positive_int(d_model, "d_model", minimum=2)
    if d_model % 2:
        raise ValueError(
            f"need n_positions >= 1 and an even d_model >= 2, got "
            f"{n_positions} and {d_model}"
        )
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (P, 1)
    # (C/2,)
    freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe.float()


def _check_positions(x: torch.Tensor, start: int, d_model: int) -> None:
    """x must be (B, T, d_model) and start a position >= 0."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(
            f"x must have shape (B, T, {d_model}), got "
            f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}"
        )
    check_positive_int(start, "start", minimum=0)


class SinusoidalPositions(nn.Module):
    """Adds the fixed sinusoidal encodings: ``x + PE[start : start + T]``."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer(
            "pe", sinusoidal_positions(max_len, d_model), persistent=False
        )

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x (B, T, d_model) -> x plus the encodings of positions start .. start + T -
        1."""
        _check_positions(x, start, self.pe.shape[1])
        if start + x.shape[1] > len(self.pe):
            raise ValueError(
                f"positions up to {start + x.shape[1]} requested, "
                f"max_len is {len(self.pe)}"
            )
        return x + self.pe[start : start + x.shape[1]].to(x.dtype)


class LearnedPositions(nn.Module):
    """Adds a learned vector per position (GPT's choice):
    ``x + P[start : start + T]``."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        check_positive_int(max_len, "max_len")
        check_positive_int(d_model, "d_model")
        self.embed = nn.Embedding(max_len, d_model)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x (B, T, d_model) -> x plus the embeddings of positions start .. start + T -
        1."""
        _check_positions(x, start, self.embed.embedding_dim)
        if start + x.shape[1] > self.embed.num_embeddings:
            raise ValueError(
                f"positions up to {start + x.shape[1]} requested, "
                f"max_len is {self.embed.num_embeddings}"
            )
        pos = torch.arange(start, start + x.shape[1], device=x.device)
        return x + self.embed(pos)


def rotary_embedding(
    x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0
) -> torch.Tensor:
    """Rotary position embedding, RoPE (Su et al., 2024): rotate pairs of features.

    The pair ``(x[2i], x[2i+1])`` of a query or key at position ``m`` is turned by the
    angle ``m * theta_i``, with ``theta_i = base^(-2i / d)`` (the frequencies of the
    sinusoidal encodings). Read as a complex number ``x[2i] + 1j * x[2i+1]``, the pair
    is multiplied by ``exp(1j * m * theta_i)``; so the dot product of a rotated query at
    m and a rotated key at n depends on the positions only through ``m - n``. Applied to
    q and k (not v) before the scores; nothing is added to the token vectors.

    Args:
        x: (..., T, d) queries or keys, d even (e.g. (B, n_heads, T, d_head)).
        positions: (T,) integer positions of the T rows; default ``0 .. T - 1``.
        base: the longest wavelength's scale, 10000 in the paper.

    Returns:
        The rotated tensor, with the shape and dtype of ``x``; angles in float64.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-1] % 2:
        raise ValueError(
            f"x must be a tensor (..., T, d) with d even, got "
            f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}"
        )
    check_real(base, "base", 1.0, low_open=True)
    T, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(T, device=x.device)
    if not isinstance(positions, torch.Tensor) or positions.shape != (T,):
        got = tuple(getattr(positions, "shape", ())) or type(positions).__name__
        raise ValueError(f"positions must be a tensor of shape ({T},), got {got}")
    i2 = torch.arange(0, d, 2, dtype=torch.float64, device=x.device)  # 2i for each pair
    theta = base ** (-i2 / d)  # (d/2,)
    angle = positions.to(torch.float64)[:, None] * theta  # (T, d/2)
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]  # each (..., T, d/2)
    rotated = torch.stack(
        [x_even * cos - x_odd * sin, x_even * sin + x_odd * cos], dim=-1
    )  # (..., T, d/2, 2)
    return rotated.flatten(-2)  # (..., T, d): the pairs back in place


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Share each key or value head among ``n_rep`` consecutive query heads:
    (B, n_kv_heads, T, d_head) -> (B, n_kv_heads * n_rep, T, d_head)."""
    check_positive_int(n_rep, "n_rep")
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


class GroupedQueryAttention(MultiHeadAttention):
    """Causal self-attention with fewer key-value heads than query heads and, if asked,
    rotary positions: the attention of LLaMA 2 and most open models since.

    ``n_heads`` query heads share ``n_kv_heads`` key and value heads, each shared by
    ``n_heads / n_kv_heads`` consecutive query heads (Ainslie et al., 2023;
    ``n_kv_heads = 1`` is multi-query attention, Shazeer, 2019). The key and value
    projections shrink to ``n_kv_heads * d_head`` outputs, and so does the key-value
    cache, which stores the heads before they are shared. With ``rope_base`` the
    queries and keys are turned by ``rotary_embedding`` at their positions (the cache's
    length onwards), before the keys are cached.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        rope_base: float | None = None,
    ):
        super().__init__(d_model, n_heads, dropout, bias)
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        check_positive_int(n_kv_heads, "n_kv_heads")
        if n_heads % n_kv_heads:
            raise ValueError(
                f"n_heads must be a multiple of n_kv_heads, got {n_heads} and "
                f"{n_kv_heads}"
            )
        if rope_base is not None:
            check_real(rope_base, "rope_base", 1.0, low_open=True)
        self.n_kv_heads, self.rope_base = n_kv_heads, rope_base
        self.d_head = d_model // n_heads
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.d_head, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.d_head, bias=bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention of the tokens ``query`` (B, T, d_model); key and value must be
        the same tokens. Arguments and result as in ``MultiHeadAttention.forward``."""
        _check_mha_inputs(query, key, value, self.d_model, mask, cache, is_causal)
        if key.shape != query.shape:
            raise ValueError(
                f"GroupedQueryAttention is self-attention: key must have the "
                f"shape of query {tuple(query.shape)}, got {tuple(key.shape)}"
            )
        B, T, _ = query.shape
        q = self.split_heads(self.q_proj(query))  # (B, nh, T, hs)
        k = self.k_proj(key).view(B, T, self.n_kv_heads, -1).transpose(1, 2)
        v = self.v_proj(value).view(B, T, self.n_kv_heads, -1).transpose(1, 2)
        if self.rope_base is not None:  # positions of the new tokens
            start = 0 if cache is None else len(cache)
            positions = torch.arange(start, start + T, device=q.device)
            q = rotary_embedding(q, positions, self.rope_base)
            k = rotary_embedding(k, positions, self.rope_base)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, n_kv, T_k, hs): the smaller cache
        n_rep = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, nh, T_k, hs)
        return self._attend(q, k, v, mask, need_weights, is_causal)
