"""`KnowledgeGraphEncoder`: embeds a knowledge graph from a study's CNN feature maps.

Paper Section III.A: the graph G = (V, E) is embedded with a GCN (Kipf & Welling) that
takes the image as input and ends in a per-node classifier, giving the node embeddings
G = {g_1, ..., g_N} that CKNet uses, frozen, as its shared knowledge matrix. Following
Zhang et al. (AAAI 2020), the initial node features come from the image:

    a_n = softmax_{hw}(w_n^T F)            per-node spatial attention over the map F
    h_n^(0) = W_in (F a_n)                 finding node n (n = 1..N)
    h_0^(0) = W_in mean_{hw}(F)            the global node, linked to every finding
    h^(l+1) = h^(l) + ReLU(GCN(h^(l), A))  residual GCN layers, A with self-loops,
                                           symmetric normalisation D^-1/2 (A+I) D^-1/2
    logit_n = u_n^T h_n^(L) + c_n          one linear head per finding node

Views are encoded separately and their node embeddings summed (IU X-Ray's two views).

The GCN layers are PyG's `DenseGCNConv`: the graph is small (tens of nodes) and the same
for every image, so propagating with the dense normalised adjacency, one batched matrix
product, gives GCNConv's output without materialising a message per edge and image
(at IU X-Ray's shape, 32 images x 947 edges x 512 channels: 62 MB per layer).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import nn

from cknet.graph import KnowledgeGraph


class GraphEncoding(NamedTuple):
    """Output of `KnowledgeGraphEncoder`.

    Attributes:
        node_embeddings: ``(B, N + 1, d_knowledge)``; row 0 is the global node.
        logits: ``(B, N)`` one finding logit per graph node.
    """

    node_embeddings: torch.Tensor
    logits: torch.Tensor


MAX_ADJACENCY_BYTES = 2**31
"""The largest dense GCN adjacency a graph may need (float32): about 23,000 nodes."""


class KnowledgeGraphEncoder(nn.Module):
    """GCN over a `KnowledgeGraph` whose node features are read from CNN maps.

    Args:
        graph: the knowledge graph (N finding nodes).
        in_channels: channels C of the CNN feature maps.
        d_knowledge: size of the node embeddings.
        num_layers: number of residual GCN layers (`torch_geometric.nn.DenseGCNConv`:
            the same parameters and output as `torch_geometric.nn.GCNConv`).

    Shapes:
        input: maps ``(B, V, C, h, w)``.
        output: `GraphEncoding` with node embeddings ``(B, N + 1, d_knowledge)`` and
        logits ``(B, N)``.
    """

    def __init__(
        self, graph: KnowledgeGraph, in_channels: int, d_knowledge: int = 512, num_layers: int = 2
    ) -> None:
        super().__init__()
        with warnings.catch_warnings():  # PyG's own use of torch.jit.script, not the user's to fix
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
            from torch_geometric.nn import DenseGCNConv
            from torch_geometric.utils import to_dense_adj

        needed = 4 * (graph.num_nodes + 1) ** 2
        if needed > MAX_ADJACENCY_BYTES:
            raise ValueError(
                f"a graph of {graph.num_nodes:,} nodes needs a dense ({graph.num_nodes + 1:,} x "
                f"{graph.num_nodes + 1:,}) GCN adjacency of {needed / 2**30:.1f} GiB, more than the "
                f"{MAX_ADJACENCY_BYTES / 2**30:.0f} GiB cknet allows (about "
                f"{int((MAX_ADJACENCY_BYTES / 4) ** 0.5) - 1:,} nodes); use a smaller graph, or a "
                f"knowledge source that needs no GCN ('random', or your own)")
        self.num_nodes = graph.num_nodes
        self.node_attention = nn.Conv2d(in_channels, graph.num_nodes, kernel_size=1)
        self.input_projection = nn.Linear(in_channels, d_knowledge)
        self.gcn_layers = nn.ModuleList(
            DenseGCNConv(d_knowledge, d_knowledge) for _ in range(num_layers)
        )
        self.classifier_weight = nn.Parameter(torch.empty(graph.num_nodes, d_knowledge))
        self.classifier_bias = nn.Parameter(torch.zeros(graph.num_nodes))
        nn.init.xavier_uniform_(self.classifier_weight)
        # (N+1, N+1): entry (i, j) counts the edges j -> i (an edge listed twice counts 2, as
        # in GCNConv's scatter-sum); DenseGCNConv adds the self-loops.
        edge_index = graph.edge_index(global_node=True)
        adjacency = to_dense_adj(edge_index.flip(0), max_num_nodes=graph.num_nodes + 1)[0]
        self.register_buffer("adjacency", adjacency, persistent=False)

    def forward(self, maps: torch.Tensor) -> GraphEncoding:
        if maps.dim() != 5:
            raise ValueError(f"maps must have shape (B, V, C, h, w), got {tuple(maps.shape)}")
        batch, views = maps.shape[:2]
        flat = maps.flatten(0, 1)  # (B*V, C, h, w)
        attention = self.node_attention(flat).flatten(2).softmax(dim=-1)  # (B*V, N, hw)
        features = flat.flatten(2)  # (B*V, C, hw)
        finding_nodes = attention @ features.transpose(1, 2)  # (B*V, N, C)
        global_node = features.mean(dim=2, keepdim=True).transpose(1, 2)  # (B*V, 1, C)
        x = self.input_projection(torch.cat([global_node, finding_nodes], dim=1))
        for gcn in self.gcn_layers:
            x = x + torch.relu(gcn(x, self.adjacency))  # (B*V, N+1, d)
        x = x.unflatten(0, (batch, views)).sum(dim=1)  # (B, N+1, d)
        logits = (x[:, 1:] * self.classifier_weight).sum(-1) + self.classifier_bias
        return GraphEncoding(x, logits)

