"""Graph neural networks: graphs as tensors, message passing by scatter, and four
layers.

Chapter 12 stores a graph of N nodes as a feature matrix ``x`` (N, d) and an
``edge_index`` (2, E) of int64 node ids. Column e is the directed edge
``edge_index[0, e] -> edge_index[1, e]``: node j = ``edge_index[0, e]`` (the source)
sends a message to node i = ``edge_index[1, e]`` (the target), the convention of
PyTorch Geometric. An undirected graph stores both directions.

Every layer gathers the sources' features along the edges (``gather(x, src)``), turns
them into messages, and adds them up at the targets with ``index_add_`` (a *scatter*);
Gilmer et al. (2017) call this message passing. ``GCNConv`` (Kipf and Welling, 2017),
``SAGEConv`` (Hamilton et al., 2017), ``GATConv`` (Velickovic et al., 2018) and
``GINConv`` (Xu et al., 2019) differ only in the message and the aggregation; tests
check each against PyTorch Geometric's layer of the same name with copied weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.train import TrainConfig, fit
from dlbook.utils import check_int, check_positive_int, check_real, make_generator

LAYERS = ("gcn", "sage", "gat", "gin", "mlp")
READOUTS = ("sum", "mean", "max")


# --------------------------------------------------------------------------------------
# Graphs as tensors
# --------------------------------------------------------------------------------------


def check_graph(x: torch.Tensor, edge_index: torch.Tensor) -> None:
    """Check that ``x`` is (N, d) and ``edge_index`` a (2, E) int64 tensor of ids in [0,
    N)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(
            f"x must be an (N, d) tensor, got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    check_edge_index(edge_index, len(x))


def check_edge_index(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Check that ``edge_index`` is a (2, E) int64 tensor of ids in [0, n_nodes)."""
    check_int(n_nodes, "n_nodes", minimum=0)
    if not isinstance(edge_index, torch.Tensor):
        raise TypeError(
            f"edge_index must be an int64 tensor, got {type(edge_index).__name__}"
        )
    if (
        edge_index.dim() != 2
        or edge_index.shape[0] != 2
        or edge_index.dtype != torch.long
    ):
        raise ValueError(
            f"edge_index must be a (2, E) int64 tensor, got shape "
            f"{tuple(edge_index.shape)} and dtype {edge_index.dtype}"
        )
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= n_nodes):
        raise ValueError(
            f"edge_index must hold node ids in [0, {n_nodes}), got values in "
            f"[{edge_index.min().item()}, {edge_index.max().item()}]"
        )
    return edge_index


def to_adjacency(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """The dense (N, N) adjacency matrix A with A[i, j] = number of edges j -> i."""
    check_edge_index(edge_index, n_nodes)
    adj = torch.zeros(n_nodes, n_nodes, device=edge_index.device)
    src, dst = edge_index
    adj.index_put_((dst, src), torch.ones_like(src, dtype=adj.dtype), accumulate=True)
    return adj


def from_adjacency(adj: torch.Tensor) -> torch.Tensor:
    """The edge_index (2, E) of the nonzero entries of an (N, N) adjacency, A[i, j] !=
    0: j -> i."""
    if (
        not isinstance(adj, torch.Tensor)
        or adj.dim() != 2
        or adj.shape[0] != adj.shape[1]
    ):
        raise ValueError(
            f"adj must be a square (N, N) tensor, got "
            f"{tuple(adj.shape) if isinstance(adj, torch.Tensor) else type(adj)}"
        )
    dst, src = adj.nonzero(as_tuple=True)
    return torch.stack([src, dst])


def undirected(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """Both directions of every edge, without duplicates or self-loops, sorted by
    target."""
    check_edge_index(edge_index, n_nodes)
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    both = both[:, both[0] != both[1]]
    keys = torch.unique(both[1] * n_nodes + both[0])  # sorted by target, then source
    return torch.stack([keys % n_nodes, keys // n_nodes])


def degree(index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """How often each node id in [0, n_nodes) occurs in ``index`` (E,): its in-degree
    when ``index`` is ``edge_index[1]``."""
    out = torch.zeros(n_nodes, device=index.device)
    return out.index_add_(0, index, torch.ones_like(index, dtype=out.dtype))


def add_self_loops(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """The edges without their self-loops, then one loop i -> i added per node."""
    check_edge_index(edge_index, n_nodes)
    kept = edge_index[:, edge_index[0] != edge_index[1]]
    loops = torch.arange(n_nodes, device=edge_index.device).repeat(2, 1)  # (2, N)
    return torch.cat([kept, loops], dim=1)


def permute_graph(
    x: torch.Tensor, edge_index: torch.Tensor, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Renumber the nodes: new node i is old node ``perm[i]``. Returns ``(x[perm],
    edges)`` with every edge's ids renamed; the graph is the same, only the order of
    its rows changes."""
    check_graph(x, edge_index)
    n = len(x)
    if not isinstance(perm, torch.Tensor) or not torch.equal(
        perm.sort().values, torch.arange(n, device=perm.device)
    ):
        raise ValueError(f"perm must be a permutation of range({n}), got {perm!r}")
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(n, device=perm.device)  # old id -> new id
    return x[perm], inverse[edge_index]


# --------------------------------------------------------------------------------------
# Gather and scatter: the two halves of message passing
# --------------------------------------------------------------------------------------


def gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows ``x[index]`` (E, ...): one row per edge, by ``index_select``.

    ``x[index]`` gives the same values, but on a CPU with several threads its backward
    adds the gradients of rows that share a node in an order that changes from run to
    run, so training is not bit-reproducible. The backward of ``index_select`` is an
    ``index_add_``, which adds them in edge order whatever the thread count.
    """
    return x.index_select(0, index)


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """out[i] = the sum of the rows src[e] (E, ...) with ``index[e] == i``."""
    if src.shape[0] != index.shape[0]:
        raise ValueError(
            f"src and index must have the same length, got {src.shape[0]} and "
            f"{index.shape[0]}"
        )
    out = src.new_zeros((n_nodes, *src.shape[1:]))
    return out.index_add_(0, index, src)  # adds, so two messages to one node both count


def scatter_mean(src: torch.Tensor, index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """The mean of the rows sent to each node (0 for a node that receives none)."""
    count = degree(index, n_nodes).to(src.dtype).clamp_min(1)
    return scatter_sum(src, index, n_nodes) / count.view(-1, *([1] * (src.dim() - 1)))


def scatter_max(src: torch.Tensor, index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """The elementwise maximum of the rows sent to each node (0 for a node that receives
    none)."""
    out = src.new_zeros((n_nodes, *src.shape[1:]))
    expanded = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return out.scatter_reduce(0, expanded, src, reduce="amax", include_self=False)


def scatter_softmax(
    scores: torch.Tensor, index: torch.Tensor, n_nodes: int
) -> torch.Tensor:
    """Softmax of the edge scores (E, ...) over the edges that share a target
    ``index[e]``.

    The largest score of each group is subtracted first, as in any stable softmax; it
    is a constant for the gradient (detached), since the result does not depend on it.
    """
    top = scatter_max(scores.detach(), index, n_nodes)  # (N, ...)
    exp = (scores - gather(top, index)).exp()  # (E, ...)
    return exp / gather(scatter_sum(exp, index, n_nodes), index)


def message_passing(
    x: torch.Tensor, edge_index: torch.Tensor, aggr: str = "sum"
) -> torch.Tensor:
    """One round of plain message passing: node i receives sum, mean or max of x[j], j
    -> i.

    Gather (x[src], one row per edge), then aggregate at the targets by a scatter.
    """
    check_graph(x, edge_index)
    src, dst = edge_index
    messages = gather(x, src)  # (E, d): the message along each edge is x[src]
    scatters = {"sum": scatter_sum, "mean": scatter_mean, "max": scatter_max}
    if aggr not in scatters:
        raise ValueError(f"aggr must be one of {tuple(scatters)}, got {aggr!r}")
    return scatters[aggr](messages, dst, len(x))  # (N, d)


# --------------------------------------------------------------------------------------
# Four layers
# --------------------------------------------------------------------------------------


def gcn_norm(
    edge_index: torch.Tensor, n_nodes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kipf and Welling's (2017, eq. 2) propagation D^-1/2 (A + I) D^-1/2 as weighted
    edges.

    Returns ``(edges, weights)``: the edges with self-loops, and each edge j -> i
    weighted by 1 / sqrt(deg(i) deg(j)), with degrees counted after adding the loops.
    """
    edges = add_self_loops(edge_index, n_nodes)
    inv_sqrt = degree(edges[1], n_nodes).pow(
        -0.5
    )  # every node has its loop, so deg >= 1
    return edges, inv_sqrt[edges[0]] * inv_sqrt[edges[1]]


class GCNConv(nn.Module):
    """Graph convolution (Kipf and Welling, 2017): H' = D^-1/2 (A+I) D^-1/2 H W + b."""

    def __init__(self, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        self.lin = nn.Linear(
            check_positive_int(d_in, "d_in"),
            check_positive_int(d_out, "d_out"),
            bias=False,
        )
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        check_graph(x, edge_index)
        edges, weight = gcn_norm(edge_index, len(x))
        h = self.lin(x)  # (N, d_out): transform first, it is cheaper when d_out < d_in
        messages = weight[:, None] * gather(h, edges[0])  # (E', d_out)
        out = scatter_sum(messages, edges[1], len(x))  # (N, d_out)
        return out if self.bias is None else out + self.bias


class SAGEConv(nn.Module):
    """GraphSAGE with the mean aggregator (Hamilton et al., 2017, Algorithm 1, lines
    4-5): W [h_i, mean_{j -> i} h_j] + b, with W split into the two blocks PyTorch
    Geometric keeps, h_i' = W_1 mean_{j -> i} h_j + W_2 h_i + b. The paper's sampling
    of a fixed number of neighbours and its normalisation of h_i' to unit length
    (line 7) are left out."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        check_positive_int(d_in, "d_in")
        check_positive_int(d_out, "d_out")
        self.lin_neighbours = nn.Linear(d_in, d_out)  # W_1 and b
        self.lin_self = nn.Linear(d_in, d_out, bias=False)  # W_2

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        mean = message_passing(x, edge_index, aggr="mean")  # (N, d_in)
        return self.lin_neighbours(mean) + self.lin_self(x)


class GATConv(nn.Module):
    """Graph attention (Velickovic et al., 2018, eq. 1-6): attention over a node's
    in-edges.

    Each head projects h to W h, scores the edge j -> i by
    e_ij = LeakyReLU(a_dst . W h_i + a_src . W h_j), turns the scores of node i's edges
    (its self-loop included) into weights by a softmax, and sums the weighted W h_j.
    Heads are concatenated (``concat=True``) or averaged, the paper's choice for the
    last layer.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
    ):
        super().__init__()
        check_positive_int(d_in, "d_in")
        self.d_out = check_positive_int(d_out, "d_out")
        self.heads = check_positive_int(heads, "heads")
        self.concat = concat
        self.negative_slope = check_real(negative_slope, "negative_slope", 0.0)
        self.dropout = check_real(dropout, "dropout", 0.0, 1.0, high_open=True)
        self.lin = nn.Linear(d_in, heads * d_out, bias=False)
        self.att_src = nn.Parameter(torch.randn(1, heads, d_out) / math.sqrt(d_out))
        self.att_dst = nn.Parameter(torch.randn(1, heads, d_out) / math.sqrt(d_out))
        self.bias = nn.Parameter(torch.zeros(heads * d_out if concat else d_out))

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, return_attention: bool = False
    ):
        """Returns (N, heads * d_out) or (N, d_out); with ``return_attention`` also the
        edges with their self-loops (2, E') and the weights (E', heads)."""
        check_graph(x, edge_index)
        N, H, C = len(x), self.heads, self.d_out
        edges = add_self_loops(edge_index, N)
        src, dst = edges
        h = self.lin(x).view(N, H, C)  # (N, H, C)
        score_src = (h * self.att_src).sum(-1)  # (N, H): a_src . W h_j
        score_dst = (h * self.att_dst).sum(-1)  # (N, H): a_dst . W h_i
        scores = F.leaky_relu(
            gather(score_src, src) + gather(score_dst, dst), self.negative_slope
        )  # (E', H)
        alpha = scatter_softmax(
            scores, dst, N
        )  # (E', H): each node's in-weights sum to 1
        dropped = F.dropout(alpha, self.dropout, self.training)
        out = scatter_sum(dropped[..., None] * gather(h, src), dst, N)  # (N, H, C)
        out = out.reshape(N, H * C) if self.concat else out.mean(dim=1)
        out = out + self.bias
        return (out, edges, alpha) if return_attention else out


class GINConv(nn.Module):
    """Graph isomorphism network layer (Xu et al., 2019, eq. 4.1): h_i' = MLP((1 + eps)
    h_i + sum_{j -> i} h_j). The sum, unlike a mean or a max, keeps how many
    neighbours sent each feature, which makes it as strong as the WL test."""

    def __init__(self, mlp: nn.Module, eps: float = 0.0, train_eps: bool = False):
        super().__init__()
        if not isinstance(mlp, nn.Module):
            raise TypeError(f"mlp must be an nn.Module, got {type(mlp).__name__}")
        self.mlp = mlp
        eps_tensor = torch.tensor(check_real(eps, "eps"))
        self.eps = nn.Parameter(eps_tensor) if train_eps else None
        if not train_eps:
            self.register_buffer("eps_fixed", eps_tensor)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        eps = self.eps if self.eps is not None else self.eps_fixed
        return self.mlp((1 + eps) * x + message_passing(x, edge_index, aggr="sum"))


def gcn_propagate(
    x: torch.Tensor, edge_index: torch.Tensor, steps: int
) -> list[torch.Tensor]:
    """[x, S x, S^2 x, ..., S^steps x] with S = D^-1/2 (A + I) D^-1/2: GCN's propagation
    without weights or nonlinearity, the features of SGC (Wu et al., 2019)."""
    check_graph(x, edge_index)
    check_int(steps, "steps", minimum=0)
    edges, weight = gcn_norm(edge_index, len(x))
    out = [x]
    for _ in range(steps):
        messages = weight[:, None] * gather(out[-1], edges[0])  # (E', d)
        out.append(scatter_sum(messages, edges[1], len(x)))
    return out


def attention_message_passing(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, edge_index: torch.Tensor
) -> torch.Tensor:
    """Chapter 6's scaled dot-product attention written as message passing on a graph.

    Edge j -> i carries the score q_i . k_j / sqrt(d); a softmax over node i's
    in-edges gives the weights and node i receives the weighted sum of the v_j. On
    the complete graph (every j -> i, self-loops included) this is
    ``dlbook.attention.attention(q, k, v)``.

    Args:
        q, k: (N, d) queries and keys of the N nodes; v: (N, d_v) values.
        edge_index: (2, E); every node must have at least one in-edge.
    """
    check_graph(q, edge_index)
    if k.shape != q.shape or v.dim() != 2 or len(v) != len(q):
        raise ValueError(
            f"need q, k (N, d) and v (N, d_v), got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    src, dst = edge_index
    scores = (gather(q, dst) * gather(k, src)).sum(-1) / math.sqrt(q.shape[-1])  # (E,)
    alpha = scatter_softmax(scores, dst, len(q))  # (E,)
    return scatter_sum(alpha[:, None] * gather(v, src), dst, len(q))  # (N, d_v)


def complete_graph(
    n_nodes: int, self_loops: bool = True, device: torch.device | None = None
) -> torch.Tensor:
    """The edge_index of every pair j -> i of n_nodes nodes (with i -> i when
    ``self_loops``)."""
    check_positive_int(n_nodes, "n_nodes")
    i, j = torch.meshgrid(
        torch.arange(n_nodes, device=device),
        torch.arange(n_nodes, device=device),
        indexing="ij",
    )
    edges = torch.stack([j.flatten(), i.flatten()])
    return edges if self_loops else edges[:, edges[0] != edges[1]]


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GNNConfig:
    """A stack of one kind of message-passing layer with ReLU and dropout in between."""

    d_in: int  # node features
    n_classes: int  # outputs per node (node classification) or per graph
    layer: str = (
        "gcn"  # "gcn", "sage", "gat", "gin", or "mlp" (the same stack, edges ignored)
    )
    d_hidden: int = 32  # width of the hidden layers (for "gat": all heads together)
    n_layers: int = 2  # message-passing layers; 2 as in Kipf and Welling (2017)
    heads: int = (
        4  # attention heads of the hidden "gat" layers (8 in Velickovic et al.)
    )
    dropout: float = 0.5  # dropout on each layer's input, as in Kipf and Welling (2017)

    def __post_init__(self):
        for name in ("d_in", "n_classes", "d_hidden", "n_layers", "heads"):
            check_positive_int(getattr(self, name), name)
        if self.layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, got {self.layer!r}")
        if self.layer == "gat" and self.d_hidden % self.heads:
            raise ValueError(
                f"d_hidden must be divisible by heads for 'gat', got "
                f"{self.d_hidden} and {self.heads}"
            )
        check_real(self.dropout, "dropout", 0.0, 1.0, high_open=True)


class _Linear(nn.Linear):
    """A linear layer that takes (x, edge_index) like a graph layer and ignores the
    edges."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


def make_layer(
    kind: str, d_in: int, d_out: int, heads: int = 1, last: bool = False
) -> nn.Module:
    """One layer of the given kind; a hidden "gat" layer concatenates ``heads``."""
    if kind == "gcn":
        return GCNConv(d_in, d_out)
    if kind == "sage":
        return SAGEConv(d_in, d_out)
    if kind == "gat":
        return (
            GATConv(d_in, d_out, heads=1)
            if last
            else GATConv(d_in, d_out // heads, heads=heads)
        )
    if kind == "gin":
        return GINConv(
            nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))
        )
    if kind == "mlp":
        return _Linear(d_in, d_out)
    raise ValueError(f"kind must be one of {LAYERS}, got {kind!r}")


class GNN(nn.Module):
    """Node classifier: ``n_layers`` graph layers, the last giving the class scores."""

    def __init__(self, config: GNNConfig):
        super().__init__()
        if not isinstance(config, GNNConfig):
            raise TypeError(f"config must be a GNNConfig, got {type(config).__name__}")
        self.config = config
        widths = (
            [config.d_in]
            + [config.d_hidden] * (config.n_layers - 1)
            + [config.n_classes]
        )
        self.layers = nn.ModuleList(
            make_layer(
                config.layer, a, b, config.heads, last=(i == config.n_layers - 1)
            )
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
        )

    def embed(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """The node representations before the last layer, (N, d_hidden) (or x for one
        layer)."""
        for layer in self.layers[:-1]:
            x = F.dropout(x, self.config.dropout, self.training)
            x = F.relu(layer(x, edge_index))
        return x

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = F.dropout(self.embed(x, edge_index), self.config.dropout, self.training)
        return self.layers[-1](h, edge_index)  # (N, n_classes)


def readout(
    h: torch.Tensor, batch: torch.Tensor, n_graphs: int, kind: str = "sum"
) -> torch.Tensor:
    """Pool the node rows h (N, d) of each graph into one row (n_graphs, d);
    ``batch[i]`` is the graph of node i. Sum keeps the node count, mean and max
    forget it."""
    scatters = {"sum": scatter_sum, "mean": scatter_mean, "max": scatter_max}
    if kind not in scatters:
        raise ValueError(f"kind must be one of {READOUTS}, got {kind!r}")
    return scatters[kind](h, batch, n_graphs)


class GraphClassifier(nn.Module):
    """GIN-style graph classifier: graph layers, a readout per graph, a linear head."""

    def __init__(self, config: GNNConfig, readout: str = "sum"):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.config, self.readout = config, readout
        widths = [config.d_in] + [config.d_hidden] * config.n_layers
        self.layers = nn.ModuleList(
            make_layer(config.layer, a, b, config.heads)
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.head = nn.Linear(config.d_hidden, config.n_classes)

    def forward(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        n_graphs: int,
    ) -> torch.Tensor:
        for layer in self.layers:
            x = F.relu(layer(x, edge_index))  # (N, d_hidden)
        pooled = readout(x, batch, n_graphs, self.readout)  # (n_graphs, d_hidden)
        return self.head(F.dropout(pooled, self.config.dropout, self.training))


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


@dataclass
class Graph:
    """Node features x (N, d), edges (2, E), labels y (N,) or (1,), and for a batch of
    graphs the graph of each node, ``batch`` (N,)."""

    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    batch: torch.Tensor | None = None

    @property
    def n_nodes(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        """The number of labels: nodes of one graph, or graphs of a batch (``fit``
        counts it)."""
        return len(self.y)

    def to(self, device: torch.device) -> Graph:
        """The same graph with every tensor on ``device``."""
        moved = [
            None if t is None else t.to(device)
            for t in (self.x, self.edge_index, self.y, self.batch)
        ]
        return Graph(*moved)


def batch_graphs(graphs: list[Graph]) -> Graph:
    """One big graph made of ``graphs`` side by side: node ids are shifted so that no
    edge joins two graphs, and ``batch`` records which graph each node came from."""
    if not graphs:
        raise ValueError("graphs must hold at least one Graph, got none")
    offsets = torch.tensor([0] + [g.n_nodes for g in graphs]).cumsum(0)
    return Graph(
        x=torch.cat([g.x for g in graphs]),
        edge_index=torch.cat(
            [g.edge_index + o for g, o in zip(graphs, offsets)], dim=1
        ),
        y=torch.cat([g.y for g in graphs]),
        batch=torch.cat([torch.full((g.n_nodes,), i) for i, g in enumerate(graphs)]),
    )


def karate_club() -> Graph:
    """Zachary's (1977) karate club: 34 members, 78 friendships, and the club each
    member joined after the split (0: Mr. Hi's, 1: the officer's). Features are
    one-hot ids."""
    import networkx as nx  # only this function needs networkx

    g = nx.karate_club_graph()
    edges = torch.tensor(list(g.edges()), dtype=torch.long).T  # (2, 78), each pair once
    y = torch.tensor(
        [0 if g.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(len(g))]
    )
    return Graph(torch.eye(len(g)), undirected(edges, len(g)), y)


def stochastic_block_model(
    sizes: list[int],
    p_in: float,
    p_out: float,
    d_features: int,
    signal: float,
    generator: torch.Generator,
) -> Graph:
    """A graph of communities (Holland et al., 1983): an edge inside a block with
    probability ``p_in``, between blocks with ``p_out``. Node features are the
    block's mean vector (norm ``signal``, a random direction) plus standard normal
    noise, so features alone are weak."""
    if not sizes or any(check_positive_int(s, "sizes[i]") < 1 for s in sizes):
        raise ValueError(
            f"sizes must be a non-empty list of positive ints, got {sizes!r}"
        )
    p_in, p_out = check_real(p_in, "p_in", 0, 1), check_real(p_out, "p_out", 0, 1)
    check_positive_int(d_features, "d_features")
    signal = check_real(signal, "signal", 0)
    y = torch.cat([torch.full((s,), c) for c, s in enumerate(sizes)])
    n = len(y)
    p = torch.where(y[:, None] == y[None, :], p_in, p_out)  # (N, N)
    upper = torch.triu(torch.rand(n, n, generator=generator) < p, diagonal=1)
    edge_index = undirected(from_adjacency(upper.float()), n)
    means = F.normalize(torch.randn(len(sizes), d_features, generator=generator), dim=1)
    x = signal * means[y] + torch.randn(n, d_features, generator=generator)
    return Graph(x, edge_index, y)


def cycle_graph(n_nodes: int) -> torch.Tensor:
    """The edge_index of the cycle 0 - 1 - ... - (n-1) - 0, both directions."""
    check_positive_int(n_nodes, "n_nodes", minimum=3)
    ring = torch.arange(n_nodes)
    return undirected(torch.stack([ring, (ring + 1) % n_nodes]), n_nodes)


def trees_and_cyclic(
    n_graphs: int,
    n_min: int,
    n_max: int,
    generator: torch.Generator,
    max_extra: int = 2,
) -> list[Graph]:
    """Random graphs labelled 0 for a tree and 1 for a graph with a cycle.

    Each graph grows a random tree (node i joins a uniformly chosen earlier node); a
    graph of class 1 then gets 1 to ``max_extra`` extra edges between non-adjacent
    nodes. Features are constant (all ones): the label lives in the structure alone.
    """
    check_positive_int(n_graphs, "n_graphs")
    check_positive_int(n_min, "n_min", minimum=4)
    check_positive_int(n_max, "n_max", minimum=n_min)
    graphs = []
    for g in range(n_graphs):
        n = int(torch.randint(n_min, n_max + 1, (), generator=generator))
        child = torch.arange(1, n)
        parent = (torch.rand(n - 1, generator=generator) * child).long()  # in [0, i)
        adj = torch.zeros(n, n, dtype=torch.bool)
        adj[child, parent] = True
        label = g % 2
        extra = (
            int(torch.randint(1, max_extra + 1, (), generator=generator))
            if label
            else 0
        )
        while extra:
            a, b = torch.randint(0, n, (2,), generator=generator).tolist()
            if a != b and not (adj[a, b] or adj[b, a]):
                adj[a, b], extra = True, extra - 1
        graphs.append(
            Graph(
                torch.ones(n, 1),
                undirected(from_adjacency(adj.float()), n),
                torch.tensor([label]),
            )
        )
    return graphs


def degree_features(
    edge_index: torch.Tensor, n_nodes: int, max_degree: int
) -> torch.Tensor:
    """One-hot in-degrees (N, max_degree + 1), degrees above ``max_degree`` in the last
    column: the usual node features of graphs that come without any (Xu et al., 2019,
    section 7)."""
    check_positive_int(max_degree, "max_degree")
    deg = degree(check_edge_index(edge_index, n_nodes)[1], n_nodes).long()
    return F.one_hot(deg.clamp_max(max_degree), max_degree + 1).float()


def random_walk_features(
    edge_index: torch.Tensor, n_nodes: int, steps: int
) -> torch.Tensor:
    """Return probabilities of a random walk, [P^1]_ii, ..., [P^steps]_ii with P = D^-1
    A: (N, steps) structural features that see cycles, which message passing alone
    cannot."""
    check_positive_int(steps, "steps")
    adj = to_adjacency(edge_index, n_nodes)
    walk = adj / adj.sum(1, keepdim=True).clamp_min(1)  # (N, N), rows sum to 1
    power, feats = torch.eye(n_nodes, device=adj.device), []
    for _ in range(steps):
        power = power @ walk
        feats.append(power.diagonal())
    return torch.stack(feats, dim=1)


# --------------------------------------------------------------------------------------
# Limits: Weisfeiler-Lehman colour refinement and over-smoothing
# --------------------------------------------------------------------------------------


def wl_colours(
    edge_index: torch.Tensor, n_nodes: int, n_iter: int, palette: dict | None = None
) -> list[list[int]]:
    """Colour refinement, the 1-dimensional Weisfeiler-Lehman test: every node starts
    with colour 0; each round a node's new colour names the pair (its colour, the
    multiset of its neighbours' colours). Returns the colours after each round, round
    0 first.

    Pass the same ``palette`` (a dict, filled here) for two graphs to compare their
    colours.
    """
    check_edge_index(edge_index, n_nodes)
    check_int(n_iter, "n_iter", minimum=0)
    palette = {} if palette is None else palette
    neighbours = [[] for _ in range(n_nodes)]
    for j, i in edge_index.T.tolist():
        neighbours[i].append(j)
    colours = [[0] * n_nodes]
    for _ in range(n_iter):
        old = colours[-1]
        signatures = [
            (old[i], tuple(sorted(old[j] for j in neighbours[i])))
            for i in range(n_nodes)
        ]
        colours.append([palette.setdefault(s, len(palette) + 1) for s in signatures])
    return colours


def wl_equivalent(
    edges_a: torch.Tensor,
    n_a: int,
    edges_b: torch.Tensor,
    n_b: int,
    n_iter: int | None = None,
) -> bool:
    """Whether colour refinement fails to tell two graphs apart: the same histogram of
    colours after every round (``n_iter`` rounds, default max(n_a, n_b))."""
    n_iter = max(n_a, n_b) if n_iter is None else n_iter
    palette: dict = {}
    rounds_a = wl_colours(edges_a, n_a, n_iter, palette)
    rounds_b = wl_colours(edges_b, n_b, n_iter, palette)
    return all(sorted(a) == sorted(b) for a, b in zip(rounds_a, rounds_b))


def mean_cosine_similarity(h: torch.Tensor) -> float:
    """Mean cosine similarity of all pairs of distinct rows of h (N, d): 1 when every
    node has the same direction, the end point of over-smoothing (Li et al., 2018)."""
    if h.dim() != 2 or len(h) < 2:
        raise ValueError(f"h must be (N, d) with N >= 2, got {tuple(h.shape)}")
    unit = F.normalize(h, dim=1)
    sim = unit @ unit.T  # (N, N)
    n = len(h)
    return ((sim.sum() - sim.diagonal().sum()) / (n * (n - 1))).item()


# --------------------------------------------------------------------------------------
# Training, with the book's one loop
# --------------------------------------------------------------------------------------


def train_nodes(
    model: nn.Module, graph: Graph, train_mask: torch.Tensor, config: TrainConfig
) -> list[float]:
    """Full-batch node classification with ``dlbook.train.fit``: every step sees the
    whole graph, and the loss is the cross-entropy of the labelled nodes. Returns the
    step losses."""
    if train_mask.dtype != torch.bool or train_mask.shape != graph.y.shape:
        raise ValueError(
            f"train_mask must be a bool tensor of shape {tuple(graph.y.shape)}, "
            f"got {train_mask.dtype} {tuple(train_mask.shape)}"
        )

    def loss_fn(model: nn.Module, _batch) -> torch.Tensor:
        logits = model(graph.x, graph.edge_index)  # (N, n_classes)
        return F.cross_entropy(logits[train_mask], graph.y[train_mask])

    stream = iter(lambda: graph, None)  # the same full batch at every step
    return fit(model, stream, loss_fn, config).step_loss


@torch.no_grad()
def node_correct(model: nn.Module, graph: Graph, mask: torch.Tensor) -> tuple[int, int]:
    """(correct, total) predictions of ``model`` on the nodes in ``mask``, eval mode."""
    model.eval()
    pred = model(graph.x, graph.edge_index).argmax(1)
    return int((pred[mask] == graph.y[mask]).sum()), int(mask.sum())


def train_graphs(
    model: GraphClassifier, graphs: list[Graph], config: TrainConfig
) -> list[float]:
    """Graph classification with ``dlbook.train.fit``: shuffled minibatches of
    ``config.batch_size`` graphs, each batch one big graph of disjoint pieces."""
    generator = make_generator(
        config.seed
    )  # the batch order changes with the seed offset

    def stream():
        while True:
            order = torch.randperm(len(graphs), generator=generator).tolist()
            for start in range(0, len(graphs), config.batch_size):
                yield batch_graphs(
                    [graphs[i] for i in order[start : start + config.batch_size]]
                )

    def loss_fn(model: nn.Module, batch: Graph) -> torch.Tensor:
        logits = model(batch.x, batch.edge_index, batch.batch, len(batch.y))
        return F.cross_entropy(logits, batch.y)

    return fit(model, stream(), loss_fn, config).step_loss


@torch.no_grad()
def graph_correct(model: GraphClassifier, graphs: list[Graph]) -> tuple[int, int]:
    """(correct, total) graph-level predictions on ``graphs``, in eval mode."""
    model.eval()
    batch = batch_graphs(graphs)
    pred = model(batch.x, batch.edge_index, batch.batch, len(graphs)).argmax(1)
    return int((pred == batch.y).sum()), len(graphs)
