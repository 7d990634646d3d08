import numpy as np
import pytest
import torch
from conftest import SHARED, require

from cknet import KnowledgeGraph, KnowledgeGraphEncoder


def test_openi40_matches_the_shared_files():
    graph = KnowledgeGraph.openi40()
    folder = require(SHARED / "knowledge" / "openi40")
    keywords = [line.strip() for line in (folder / "keywords.txt").read_text().splitlines() if line.strip()]
    adjacency = np.loadtxt(folder / "adjacency_41x41.txt", delimiter=",", dtype=int)
    assert graph.num_nodes == 40
    assert graph.nodes == [k.split(" / ")[0] for k in keywords]
    assert graph.synonyms["pleural effusion"] == ["pleural effusions"]
    assert (graph.adjacency() == adjacency[1:, 1:]).all()
    # Row 0 of the shared file is the global node the encoder adds.
    ei = graph.edge_index(global_node=True)
    dense = torch.zeros(41, 41, dtype=torch.long)
    dense[ei[0], ei[1]] = 1
    assert (dense.numpy() == adjacency).all()


def test_constructors_agree(tmp_path):
    nodes = ["effusion", "atelectasis", "cardiomegaly", "edema"]
    by_name = KnowledgeGraph(nodes, [("effusion", "atelectasis"), ("cardiomegaly", "edema")],
                             synonyms={"effusion": ["pleural fluid"]})
    by_index = KnowledgeGraph(nodes, [(1, 0), (2, 3), (3, 2)], synonyms={"effusion": ["pleural fluid"]})
    assert by_name == by_index and by_name.num_edges == 2
    from_matrix = KnowledgeGraph.from_adjacency(by_name.adjacency(), nodes,
                                                synonyms={"effusion": ["pleural fluid"]})
    assert from_matrix == by_name
    path = tmp_path / "g.json"
    by_name.to_json(path)
    assert KnowledgeGraph.from_json(path) == by_name


@pytest.mark.parametrize(
    "nodes, edges, match",
    [(["a", "a"], [], "duplicate"), (["a", "b"], [(0, 2)], "out of range"),
     (["a", "b"], [(1, 1)], "self-loop"), (["a", "b"], [("a", "c")], "unknown node"),
     ([], [], "at least one node"), (["a", ""], [], "non-empty")],
)
def test_invalid_graphs(nodes, edges, match):
    with pytest.raises(ValueError, match=match):
        KnowledgeGraph(nodes, edges)


def test_invalid_adjacency():
    with pytest.raises(ValueError, match="symmetric"):
        KnowledgeGraph.from_adjacency([[0, 1], [0, 0]], ["a", "b"])
    with pytest.raises(ValueError, match="diagonal"):
        KnowledgeGraph.from_adjacency([[1, 0], [0, 0]], ["a", "b"])
    with pytest.raises(ValueError, match="2 nodes"):
        KnowledgeGraph.from_adjacency(np.zeros((3, 3)), ["a", "b"])


def test_encoder_shapes_and_views_sum():
    graph = KnowledgeGraph(["a", "b", "c"], [("a", "b")])
    encoder = KnowledgeGraphEncoder(graph, in_channels=8, d_knowledge=16, num_layers=2)
    maps = torch.randn(4, 2, 8, 3, 3)
    out = encoder(maps)
    assert out.node_embeddings.shape == (4, 4, 16) and out.logits.shape == (4, 3)
    per_view = [encoder(maps[:, v:v + 1]).node_embeddings for v in range(2)]
    torch.testing.assert_close(out.node_embeddings, per_view[0] + per_view[1])


def test_encoder_uses_the_edges():
    maps = torch.randn(2, 1, 8, 3, 3)
    nodes = ["a", "b", "c", "d"]
    connected = KnowledgeGraphEncoder(KnowledgeGraph(nodes, [("a", "b"), ("c", "d")]), 8, 16)
    rewired = KnowledgeGraphEncoder(KnowledgeGraph(nodes, [("a", "c")]), 8, 16)
    rewired.load_state_dict(connected.state_dict())
    assert not torch.allclose(connected(maps).node_embeddings, rewired(maps).node_embeddings)


def test_encoder_matches_dense_gcn_reference():
    """One GCN layer by hand: h + relu(D^-1/2 (A + I) D^-1/2 h W + b)."""
    graph = KnowledgeGraph(["a", "b", "c"], [("a", "b"), ("b", "c")])
    encoder = KnowledgeGraphEncoder(graph, 5, 6, num_layers=1).double()
    maps = torch.randn(2, 1, 5, 2, 2, dtype=torch.float64)
    flat = maps[:, 0].flatten(2)  # (B, C, hw)
    att = torch.einsum("nc,bcs->bns", encoder.node_attention.weight[:, :, 0, 0], flat)
    att = (att + encoder.node_attention.bias[None, :, None]).softmax(-1)
    nodes = torch.cat([flat.mean(2)[:, None], torch.einsum("bns,bcs->bnc", att, flat)], 1)
    h = encoder.input_projection(nodes)
    A = torch.zeros(4, 4, dtype=torch.float64)
    ei = graph.edge_index(global_node=True)
    A[ei[0], ei[1]] = 1
    A_hat = A + torch.eye(4, dtype=torch.float64)
    d = A_hat.sum(1).rsqrt()
    norm = d[:, None] * A_hat * d[None, :]
    gcn = encoder.gcn_layers[0]
    h = h + torch.relu(norm @ (h @ gcn.lin.weight.T) + gcn.bias)
    logits = (h[:, 1:] * encoder.classifier_weight).sum(-1) + encoder.classifier_bias
    out = encoder(maps)
    torch.testing.assert_close(out.node_embeddings, h)
    torch.testing.assert_close(out.logits, logits)


def test_dense_gcn_layers_match_pyg_message_passing():
    """The dense propagation gives GCNConv's output (a second code path: PyG's
    per-edge messages), an edge listed twice included, from the same parameters."""
    from torch_geometric.nn import GCNConv

    graph = KnowledgeGraph(["a", "b", "c", "d", "e"], [("a", "b"), ("b", "c"), ("d", "e")])
    graph.edges.append((1, 0))  # edited by hand: a-b twice, which GCNConv counts twice
    encoder = KnowledgeGraphEncoder(graph, 6, 8, num_layers=2).double()
    maps = torch.randn(3, 2, 6, 3, 3, dtype=torch.float64)
    edge_index = graph.edge_index(global_node=True)
    layers = [GCNConv(8, 8).double() for _ in encoder.gcn_layers]
    for layer, dense in zip(layers, encoder.gcn_layers):
        layer.load_state_dict(dense.state_dict())  # the same parameter names and shapes
    flat = maps.flatten(0, 1)
    attention = encoder.node_attention(flat).flatten(2).softmax(-1)
    features = flat.flatten(2)
    nodes = torch.cat([features.mean(2)[:, None], attention @ features.transpose(1, 2)], 1)
    x = encoder.input_projection(nodes)
    for layer in layers:
        x = x + torch.relu(torch.stack([layer(h, edge_index) for h in x]))
    x = x.unflatten(0, (3, 2)).sum(1)
    torch.testing.assert_close(encoder(maps).node_embeddings, x)
    assert encoder.adjacency[1, 2] == encoder.adjacency[2, 1] == 2


def test_from_cooccurrence_brute_force():
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 4)) < 0.3).astype(float)
    labels[:, 3] = labels[:, 0]  # 0 and 3 always together
    labels[5, 1] = np.nan  # not mentioned: not positive
    graph = KnowledgeGraph.from_cooccurrence(labels, ["a", "b", "c", "d"], min_count=15, min_probability=0.4)
    expected = set()
    for i in range(4):
        for j in range(i + 1, 4):
            both = ((labels[:, i] == 1) & (labels[:, j] == 1)).sum()
            p = max(both / (labels[:, i] == 1).sum(), both / (labels[:, j] == 1).sum())
            if both >= 15 and p >= 0.4:
                expected.add((i, j))
    assert set(graph.edges) == expected and (0, 3) in expected
    with pytest.raises(ValueError, match="shape"):
        KnowledgeGraph.from_cooccurrence(labels, ["a", "b"])


def test_from_edge_list_file(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("# findings that go together\neffusion,atelectasis\ncardiomegaly\tedema\n\n")
    graph = KnowledgeGraph.from_edge_list(path)
    assert graph.nodes == ["effusion", "atelectasis", "cardiomegaly", "edema"] and graph.num_edges == 2
    with_isolated = KnowledgeGraph.from_edge_list(path, nodes=["effusion", "atelectasis", "cardiomegaly",
                                                               "edema", "fracture"])
    assert with_isolated.num_nodes == 5
    (tmp_path / "bad.txt").write_text("effusion\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 1"):
        KnowledgeGraph.from_edge_list(tmp_path / "bad.txt")


def test_chexpert14_groups():
    graph = KnowledgeGraph.chexpert14()
    assert graph.nodes[0] == "No Finding" and graph.nodes[-1] == "Support Devices" and graph.num_nodes == 14
    adjacency = graph.adjacency()
    i = graph.nodes.index
    assert adjacency[i("Pleural Effusion"), i("Pneumothorax")] == 1
    assert adjacency[i("Edema"), i("Atelectasis")] == 1
    assert adjacency[i("Cardiomegaly"), i("Edema")] == 0
    assert adjacency[i("No Finding")].sum() == 0 and adjacency[i("Fracture")].sum() == 0


def test_validate_after_editing():
    graph = KnowledgeGraph(["a", "b"], [(0, 1)])
    graph.edges.append((1, 1))
    with pytest.raises(ValueError, match="self-loop"):
        graph.validate()
