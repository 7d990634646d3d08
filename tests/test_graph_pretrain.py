import numpy as np
import pytest
import torch
from conftest import small_config
from synthetic import FINDINGS, make_studies
from torch.utils.data import TensorDataset

from cknet import CKNet, KnowledgeGraph, ReportTokenizer
from cknet.labeler import KeywordLabeler
from cknet.metrics import roc_auc
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.training import GraphPretrainer

GRAPH = KnowledgeGraph(FINDINGS, [("effusion", "atelectasis"), ("cardiomegaly", "edema")])


def test_roc_auc_equals_pairwise_brute_force():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (40, 3))
    scores = np.round(rng.random((40, 3)), 1)  # many ties
    for column in range(3):
        pos, neg = scores[labels[:, column] == 1, column], scores[labels[:, column] == 0, column]
        brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
        assert roc_auc(labels, scores)[column] == pytest.approx(brute)
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5.0)))


@pytest.mark.slow
def test_pretraining_reads_visible_findings_and_stores_static_knowledge():
    torch.manual_seed(0)
    images, labels, _ = make_studies(320, seed=0)
    val_images, val_labels, _ = make_studies(120, seed=1)
    model = KnowledgeGraphModel(GRAPH, backbone="resnet18", d_knowledge=32)
    trainer = GraphPretrainer(model, epochs=4, batch_size=32, lr=1e-3, device="cpu")
    result = trainer.fit(TensorDataset(images, torch.tensor(labels)),
                         TensorDataset(val_images, torch.tensor(val_labels)))
    assert result.best.mean_auc >= 0.9, result.history
    assert result.best.mean_auc == max(r.mean_auc for r in result.history)
    # The model holds the kept epoch: its AUC on held-out images is the recorded one.
    model.eval()
    with torch.no_grad():
        scores = model(val_images).logits.numpy()
    assert roc_auc(val_labels, scores).mean() == pytest.approx(result.best.mean_auc, abs=1e-6)
    with torch.no_grad():
        expected = model(images).node_embeddings.mean(0)
    torch.testing.assert_close(model.static_knowledge, expected, rtol=1e-4, atol=1e-5)


def test_static_knowledge_can_be_skipped():
    """Without the static matrix the fit makes no pass over the training split in eval
    mode (only the validation split's), and the model says it has none."""
    images, labels, _ = make_studies(24, seed=0)
    val_images, val_labels, _ = make_studies(8, seed=1)
    seen_in_eval = []
    for static in (True, False):
        torch.manual_seed(0)
        model = KnowledgeGraphModel(GRAPH, backbone="resnet18", d_knowledge=8)
        model.backbone.trunk.register_forward_hook(
            lambda module, args, out: None if module.training else seen_in_eval.append(len(args[0])))
        GraphPretrainer(model, epochs=1, batch_size=8, device="cpu").fit(
            TensorDataset(images, torch.tensor(labels)), TensorDataset(val_images, torch.tensor(val_labels)),
            static_knowledge=static)
        assert model.has_static_knowledge == static
        assert sum(seen_in_eval) == (8 + 24 if static else 8) * images.shape[1]
        seen_in_eval.clear()
    assert not model.static_knowledge.any()


def test_positive_weights_balance_the_nodes():
    trainer = GraphPretrainer(KnowledgeGraphModel(GRAPH, backbone="resnet18", d_knowledge=8),
                              max_positive_weight=5)
    labels = np.array([[1, 0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 0]])
    assert trainer.positive_weights(labels).tolist() == [3.0, 1.0, 3.0, 1.0, 1.0]


def test_bad_labels_are_rejected():
    images, labels, _ = make_studies(4)
    trainer = GraphPretrainer(KnowledgeGraphModel(GRAPH, backbone="resnet18", d_knowledge=8), epochs=1)
    with pytest.raises(ValueError, match="0 or 1"):
        trainer.fit(TensorDataset(images, torch.full((4, 5), -1.0)),
                    TensorDataset(images, torch.tensor(labels)))
    with pytest.raises(ValueError, match="one column per graph node"):
        trainer.fit(TensorDataset(images, torch.zeros(4, 3)), TensorDataset(images, torch.tensor(labels)))


def test_graph_model_save_load(tmp_path):
    model = KnowledgeGraphModel(GRAPH, backbone="resnet18", d_knowledge=8).eval()
    model.set_static_knowledge(torch.randn(6, 8))
    model.save_pretrained(tmp_path / "g")
    loaded = KnowledgeGraphModel.from_pretrained(tmp_path / "g").eval()
    images = torch.randn(2, 1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(images).node_embeddings, loaded(images).node_embeddings)
    assert loaded.has_static_knowledge and torch.equal(loaded.static_knowledge, model.static_knowledge)
    with pytest.raises(FileExistsError):
        model.save_pretrained(tmp_path / "g")


@pytest.mark.slow
@pytest.mark.parametrize("source", ["image", "static"])
def test_custom_five_node_graph_end_to_end(tmp_path, source):
    """Label, pretrain, train CKNet a step, generate, save, load: a user's own graph."""
    torch.manual_seed(0)
    images, _, reports = make_studies(96, seed=2)
    labels = KeywordLabeler(GRAPH).label_binary(reports)  # labels from the report text
    graph_model = KnowledgeGraphModel(GRAPH, backbone="resnet18", d_knowledge=32)
    GraphPretrainer(graph_model, epochs=1, batch_size=32, lr=1e-3, device="cpu").fit(
        TensorDataset(images[:64], torch.tensor(labels[:64])),
        TensorDataset(images[64:], torch.tensor(labels[64:])),
    )
    tokenizer = ReportTokenizer.from_reports(reports, threshold=1)
    config = small_config(knowledge_source=source, num_views=1, d_knowledge=32,
                          max_length=tokenizer.max_length)
    model = CKNet(config, tokenizer, graph_model=graph_model)
    assert model.graph == GRAPH
    ids, _ = tokenizer.encode_batch(reports[:8])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model(images[:8], ids, labels=ids).loss.backward()
    optimizer.step()
    texts = model.generate(images[:2], max_new_tokens=10)
    model.save_pretrained(tmp_path / "cknet")
    loaded = CKNet.from_pretrained(tmp_path / "cknet")
    assert loaded.graph == GRAPH and loaded.generate(images[:2], max_new_tokens=10) == texts


def test_graph_model_must_fit_the_config(iu_tokenizer):
    graph_model = KnowledgeGraphModel(GRAPH, backbone="resnet18", d_knowledge=16)
    with pytest.raises(ValueError, match="d_knowledge"):
        CKNet(small_config(d_knowledge=32), iu_tokenizer, graph_model=graph_model)
    with pytest.raises(ValueError, match="no static knowledge"):
        CKNet(small_config(d_knowledge=16, knowledge_source="static"), iu_tokenizer, graph_model=graph_model)
    with pytest.raises(ValueError, match="'random'"):
        CKNet(small_config(d_knowledge=16, knowledge_source="random"), iu_tokenizer, graph_model=graph_model)


def test_csv_labels_keyed_by_study_label_every_image_entry_of_the_study(tmp_path):
    """MIMIC-CXR: the CheXpert CSV has a row per study, R2Gen's annotation an entry per image."""
    from cknet.training.graph_stage import node_labels

    graph = KnowledgeGraph(["Cardiomegaly", "Edema"], [(0, 1)])
    (tmp_path / "labels.csv").write_text("subject_id,study_id,Edema,Cardiomegaly,Other\n"
                                         "1,500,1.0,,1\n2,501,-1.0,0.0,\n")
    annotation = {"train": [{"id": "dicom-a", "study_id": 500}, {"id": "dicom-b", "study_id": 500}],
                  "val": [{"id": "dicom-c", "study_id": 501}],
                  "test": [{"id": "dicom-d", "study_id": 999}]}
    labels = node_labels(f"csv:{tmp_path / 'labels.csv'}", graph, annotation, uncertain=1)
    assert {k: v.tolist() for k, v in labels.items()} == {
        "dicom-a": [0.0, 1.0], "dicom-b": [0.0, 1.0], "dicom-c": [0.0, 1.0]}
    assert node_labels(f"csv:{tmp_path / 'labels.csv'}", graph, annotation, uncertain=0)["dicom-c"].tolist() \
        == [0.0, 0.0]
    annotation["val"].append({"id": "dicom-e", "study_id": 502})
    with pytest.raises(ValueError, match="no row with study_id '502'.*'dicom-e'"):
        node_labels(f"csv:{tmp_path / 'labels.csv'}", graph, annotation)
    iu_style = {"train": [{"id": "CXR1"}], "val": [{"id": "CXR2"}]}
    (tmp_path / "iu.csv").write_text("id,Edema,Cardiomegaly\nCXR1,1,0\nCXR2,0,1\n")
    assert node_labels(f"csv:{tmp_path / 'iu.csv'}@id", graph, iu_style)["CXR2"].tolist() == [1.0, 0.0]
