"""The design card's four modules, by their promised names: importable from `cknet`, and
composed by hand they compute what `CKNet.encode` computes (a second code path)."""

import pytest
import torch
from conftest import small_config


def test_the_four_names_import_from_cknet():
    import cknet
    from cknet import CKNetTransformer, CrossModalKnowledgeMatrix, KnowledgeGraphEncoder, VisualExtractor

    for cls in (VisualExtractor, KnowledgeGraphEncoder, CrossModalKnowledgeMatrix, CKNetTransformer):
        assert issubclass(cls, torch.nn.Module) and cls.__name__ in cknet.__all__


@pytest.mark.parametrize("fusion", ["concat", "gated"])
def test_composed_by_hand_equals_cknet_encode(iu_tokenizer, fusion):
    from cknet import (
        CKNet,
        CKNetTransformer,
        CrossModalKnowledgeMatrix,
        KnowledgeGraph,
        KnowledgeGraphEncoder,
        KnowledgeGraphModel,
        VisualExtractor,
    )

    graph = KnowledgeGraph(["effusion", "atelectasis", "cardiomegaly"], [(0, 1), (0, 2)])
    # the four modules, standalone: CNN patches (eq. 1), G from the GCN (III.A),
    # the query and fusion (eqs. 4-9), the encoder (eq. 10)
    visual = VisualExtractor("resnet18", d_model=32, dropout=0.0)
    graph_encoder = KnowledgeGraphEncoder(graph, visual.num_channels, d_knowledge=16, num_layers=2)
    cross_modal = CrossModalKnowledgeMatrix(32, 16, num_heads=4, gamma=3, fusion=fusion)
    if fusion == "gated":
        torch.nn.init.normal_(cross_modal.gate)
    transformer = CKNetTransformer(32, 4, 64, 1, 1, 0.0, True)
    for module in (visual, graph_encoder, cross_modal, transformer):
        module.eval()
    images = torch.randn(2, 2, 3, 64, 64)
    with torch.no_grad():
        maps = visual.maps(images)
        knowledge = graph_encoder(maps).node_embeddings  # G, (B, N + 1, d_knowledge)
        memory = transformer.encode(cross_modal(visual.project(maps), knowledge))

    # the same weights in a CKNet whose visual CNN is the graph model's (share_backbone)
    graph_model = KnowledgeGraphModel(graph, "resnet18", d_knowledge=16, num_gcn_layers=2)
    graph_model.backbone.load_state_dict(visual.backbone.state_dict())
    graph_model.encoder.load_state_dict(graph_encoder.state_dict())
    config = small_config(d_model=32, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, d_knowledge=16,
                          gamma=3, share_backbone=True, knowledge_fusion=fusion)
    model = CKNet(config, iu_tokenizer, graph_model=graph_model).eval()
    model.visual_extractor.projection.load_state_dict(visual.projection.state_dict())
    model.cross_modal.load_state_dict(cross_modal.state_dict())
    model.transformer.load_state_dict(transformer.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.encode(images).memory, memory)
        torch.testing.assert_close(model.knowledge_vectors(images), knowledge)
