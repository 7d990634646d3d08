"""Extending cknet from outside the package: a knowledge source, a logits processor, a
dataset preset (the examples of docs/extending.md)."""

import copy
import json

import pytest
import torch
from conftest import small_config

import cknet
from cknet import CKNet, CKNetConfig, ReportTokenizer
from cknet.config import DATASETS, DatasetPreset
from cknet.generation import LogitsProcessor
from cknet.knowledge import KNOWLEDGE_SOURCES
from cknet.registry import RegistrationWarning
from cknet.tokenizers import clean_report


class GlossaryKnowledge(cknet.KnowledgeSource):
    """A fixed matrix, e.g. embeddings of a text knowledge base: one row per entry."""

    name = "glossary-test"

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__(*matrix.shape)
        self.register_buffer("matrix", matrix)

    def forward(self, images=None):
        return self.matrix

    @classmethod
    def for_loading(cls, config, graph, shapes):
        return cls(torch.zeros(shapes["matrix"]))


class NoWordEarly(LogitsProcessor):
    def __init__(self, token_id: int, steps: int) -> None:
        self.token_id, self.steps = token_id, steps

    def __call__(self, scores, tokens, step):
        if step < self.steps:
            scores[:, self.token_id] = float("-inf")
        return scores


def images_for(config, batch=2):
    return torch.randn(batch, config.num_views, 3, config.image_size, config.image_size)


def test_a_knowledge_source_of_ones_own_works_and_reloads(tmp_path, iu_tokenizer):
    matrix = torch.randn(11, 32)  # 11 entries: not the graph's N + 1 rows
    model = CKNet(small_config(), iu_tokenizer, knowledge_source=GlossaryKnowledge(matrix)).eval()
    assert model.config.knowledge_source == "glossary-test"
    images = images_for(model.config)
    ids, _ = iu_tokenizer.encode_batch(["no effusion.", "the heart is normal."])
    out = model(images, ids, labels=ids)
    out.loss.backward()
    assert model.cross_modal.key_proj.weight.grad is not None  # the queries read the matrix
    with torch.no_grad():  # and the output depends on it
        other = CKNet(small_config(), iu_tokenizer, knowledge_source=GlossaryKnowledge(matrix * 3))
        other.load_state_dict({**model.state_dict(), "knowledge_source.matrix": matrix * 3})
        assert not torch.allclose(other.eval()(images, ids).logits, out.logits)
    assert len(model.generate(images, max_new_tokens=5)) == 2

    # building a model registered nothing: saving says so, and loading needs the registration
    assert GlossaryKnowledge.name not in KNOWLEDGE_SOURCES
    with pytest.warns(UserWarning, match=r"register_knowledge_source\(GlossaryKnowledge\)"):
        model.save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="not registered"):
        CKNet.from_pretrained(tmp_path / "m")
    cknet.register_knowledge_source(GlossaryKnowledge)
    loaded = CKNet.from_pretrained(tmp_path / "m")
    KNOWLEDGE_SOURCES.unregister(GlossaryKnowledge.name)
    assert isinstance(loaded.knowledge_source, GlossaryKnowledge)
    assert loaded.knowledge_source.num_vectors == 11
    with torch.no_grad():
        assert torch.equal(loaded(images, ids).logits, model(images, ids).logits)


def test_a_knowledge_source_must_fit_the_config(iu_tokenizer):
    with pytest.raises(ValueError, match="d_knowledge"):
        CKNet(small_config(), iu_tokenizer, knowledge_source=GlossaryKnowledge(torch.randn(11, 16)))
    with pytest.raises(ValueError, match="gamma"):
        CKNet(small_config(gamma=4), iu_tokenizer, knowledge_source=GlossaryKnowledge(torch.randn(3, 32)))
    with pytest.raises(ValueError, match="KnowledgeSource"):
        CKNet(small_config(), iu_tokenizer, knowledge_source=torch.randn(11, 32))
    with pytest.raises(ValueError, match="name"):
        cknet.register_knowledge_source(type("Nameless", (cknet.KnowledgeSource,), {}))


@pytest.mark.parametrize("options", [dict(num_beams=1), dict(num_beams=3),
                                     dict(do_sample=True, generator=torch.Generator().manual_seed(0))])
def test_a_logits_processor_of_ones_own_applies_to_every_search(iu_tokenizer, options):
    torch.manual_seed(3)
    model = CKNet(small_config(knowledge_source="random"), iu_tokenizer).eval()
    images = images_for(model.config, 3)
    plain = model.generate(images, max_new_tokens=6, min_new_tokens=6, return_scores=True, **options)
    first = plain[0][0].token_ids[0]  # a word this model likes to start with
    banned = model.generate(images, max_new_tokens=6, min_new_tokens=6, return_scores=True,
                            logits_processors=[NoWordEarly(first, steps=3)], **options)
    for study in banned:
        assert first not in study[0].token_ids[:3]
    if not options.get("do_sample"):
        assert plain[0][0].token_ids[:1] != banned[0][0].token_ids[:1]


def test_greedy_with_a_processor_equals_argmax_of_the_processed_recomputation(iu_tokenizer):
    torch.manual_seed(5)
    model = CKNet(small_config(knowledge_source="none"), iu_tokenizer).eval()
    images = images_for(model.config, 2)
    word = iu_tokenizer.token_to_id["normal"]
    texts = model.generate(images, num_beams=1, max_new_tokens=6, min_new_tokens=6,
                           logits_processors=[NoWordEarly(word, steps=6)], readable=False)
    ids = torch.full((2, 1), iu_tokenizer.bos_id)
    with torch.no_grad():
        for _ in range(6):
            logits = model(images, ids).logits[:, -1]
            logits[:, [iu_tokenizer.pad_id, iu_tokenizer.bos_id, iu_tokenizer.eos_id, word]] = float("-inf")
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    assert texts == [iu_tokenizer.decode(row) for row in ids]


def test_adding_a_dataset_preset_is_one_registration(iu_annotation):
    preset = DatasetPreset(num_views=1, max_length=24, vocab_threshold=2, fold_whitespace=True)
    assert cknet.register_dataset("toy_cxr", preset) is preset
    assert cknet.register_dataset("toy_cxr", preset) is preset  # the same preset again: silent
    other = DatasetPreset(num_views=2, max_length=24, vocab_threshold=2)
    with pytest.warns(RegistrationWarning, match="'toy_cxr' is registered again"):
        cknet.register_dataset("toy_cxr", other)  # a notebook cell run again, changed: the new one wins
    assert DATASETS["toy_cxr"] is other
    cknet.register_dataset("toy_cxr", preset)
    with pytest.raises(ValueError, match="built-in"):
        cknet.register_dataset("iu_xray", preset)
    with pytest.raises(TypeError):
        DATASETS["toy_cxr"] = preset  # the registry is no mutable global
    config = CKNetConfig.preset("toy_cxr", backbone="resnet18", image_size=64, d_model=32, num_heads=2,
                                d_ff=32, d_knowledge=16, gamma=4, num_encoder_layers=1, num_decoder_layers=1)
    assert (config.num_views, config.max_length) == (1, 24)
    reports = [e["report"] for e in iu_annotation["train"][:200]]
    tok = ReportTokenizer.from_reports(reports, dataset="toy_cxr")
    assert tok.threshold == 2 and tok.max_length == 24
    report = "Heart is normal.\n\nNo effusion."  # sentences split only once newlines are folded
    assert clean_report(report, "toy_cxr") == "heart is normal . no effusion ."
    assert clean_report(report, "iu_xray") == "heart is normal no effusion ."
    model = CKNet(config, tok)
    assert len(model.generate(torch.randn(2, 1, 3, 64, 64), max_new_tokens=4)) == 2
    with pytest.raises(ValueError, match="toy_cxr"):
        CKNetConfig.preset("not_a_dataset")


def test_the_factory_builds_a_registered_source_named_in_the_config(tmp_path, iu_tokenizer):
    @cknet.register_knowledge_source
    class OnesKnowledge(cknet.KnowledgeSource):
        """Built from the config alone: M = 5 rows of ones."""

        name = "ones-test"

        def __init__(self, num_vectors: int, dim: int) -> None:
            super().__init__(num_vectors, dim)
            self.register_buffer("matrix", torch.ones(num_vectors, dim))

        def forward(self, images=None):
            return self.matrix

        @classmethod
        def create(cls, config, graph, graph_model):
            return cls(5, config.d_knowledge)

        @classmethod
        def for_loading(cls, config, graph, shapes):
            return cls(*shapes["matrix"])

    try:
        from cknet.knowledge import create_knowledge_source

        config = small_config(knowledge_source="ones-test", gamma=2)
        source = create_knowledge_source(config, cknet.KnowledgeGraph.openi40(), None)
        assert isinstance(source, OnesKnowledge) and source.num_vectors == 5
        model = CKNet(config, iu_tokenizer).eval()  # no instance passed: the registry builds it
        assert isinstance(model.knowledge_source, OnesKnowledge) and torch.equal(model.knowledge_vectors(),
                                                                          torch.ones(5, 32))
        model.save_pretrained(tmp_path / "m")
        loaded = CKNet.from_pretrained(tmp_path / "m")
        assert isinstance(loaded.knowledge_source, OnesKnowledge) and loaded.knowledge_source.num_vectors == 5
        unknown = copy.copy(config)
        unknown.knowledge_source = "nobody-registered-this"
        with pytest.raises(ValueError, match="not registered"):
            create_knowledge_source(unknown, cknet.KnowledgeGraph.openi40(), None)
    finally:
        KNOWLEDGE_SOURCES.unregister("ones-test")


class TinyCNN(torch.nn.Module):
    """A user's own CNN: 3 x H x W images to 24 x H/8 x W/8 maps."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=4, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 24, 3, stride=2, padding=1), torch.nn.ReLU())

    def forward(self, images):
        return self.layers(images)


def tiny_graph():
    return cknet.KnowledgeGraph(["effusion", "atelectasis", "cardiomegaly"], [("effusion", "atelectasis")])


def test_ones_own_backbone_and_graph_by_name_work_in_cknet_pretraining_and_loading(tmp_path, iu_tokenizer,
                                                                                    capsys):
    from test_annotation import write_dataset

    from cknet.cli import main
    from cknet.modules.graph_model import KnowledgeGraphModel

    built = []

    def build_tiny(weights):
        built.append(weights)
        return TinyCNN()

    cknet.register_backbone("tiny-cnn-test", build_tiny)
    cknet.register_graph("tiny-graph-test", tiny_graph)
    with pytest.raises(ValueError, match="torchvision model's name"):
        cknet.register_backbone("resnet18", build_tiny)
    with pytest.raises(ValueError, match="built-in"):
        cknet.register_graph("openi40", tiny_graph)
    graph = cknet.KnowledgeGraph.by_name("tiny-graph-test")
    assert graph.name == "tiny-graph-test" and graph.num_nodes == 3
    with pytest.raises(ValueError, match="registered"):
        cknet.KnowledgeGraph.by_name("no-such-graph")

    # the command line: the graph by name, the backbone by name
    write_dataset(tmp_path / "data", count=12)
    args = ["pretrain-graph", "--data-dir", str(tmp_path / "data"), "--graph", "tiny-graph-test",
            "--backbone", "tiny-cnn-test", "--image-size", "64", "--d-knowledge", "16", "--epochs", "1",
            "--batch-size", "8", "--output", str(tmp_path / "graph_model"), "--quiet", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr().err
    graph_model = KnowledgeGraphModel.from_pretrained(tmp_path / "graph_model")
    assert graph_model.graph.name == "tiny-graph-test" and graph_model.backbone.num_channels == 24

    # the model: the user's CNN as the visual extractor, the pretrained graph stage as G
    config = small_config(backbone="tiny-cnn-test", d_knowledge=16, gamma=2)
    model = CKNet(config, iu_tokenizer, graph_model=graph_model).eval()
    assert isinstance(model.visual_extractor.backbone.trunk, TinyCNN)
    images = images_for(model.config)
    ids, _ = iu_tokenizer.encode_batch(["no effusion.", "the heart is normal."])
    model.save_pretrained(tmp_path / "m")
    loaded = CKNet.from_pretrained(tmp_path / "m")
    assert isinstance(loaded.visual_extractor.backbone.trunk, TinyCNN)
    with torch.no_grad():
        assert torch.equal(loaded(images, ids).logits, model(images, ids).logits)


def test_installed_plugins_are_loaded_by_the_command_line(monkeypatch, capsys):
    import importlib.metadata

    from cknet.cli import main
    from cknet.presets import DATASETS

    class EntryPoint:
        name, value = "toy", "toy_plugin"

        def load(self):
            if "plugin_cxr" not in DATASETS:
                preset = DatasetPreset(num_views=1, max_length=30, vocab_threshold=2)
                cknet.register_dataset("plugin_cxr", preset)

    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [EntryPoint()] if group == "cknet.plugins" else [])
    monkeypatch.setattr("cknet.registry._PLUGINS_LOADED", [])  # as in a fresh process
    assert main(["config", "plugin_cxr"]) == 0  # a dataset only the plugin knows
    assert CKNetConfig.from_dict(json.loads(capsys.readouterr().out)).max_length == 30


def test_every_registry_takes_a_decorator_and_a_cell_run_again():
    """One idiom for graphs, backbones, keyword labelers and knowledge sources: the
    decorator form registers, running the same cell again (a new function under the
    same name) replaces the earlier one with a warning, and unregister forgets it;
    built-in names are kept."""
    from cknet.graph import GRAPHS
    from cknet.labeler.keyword import KEYWORD_LABELERS, KeywordLabeler, register_keyword_labeler
    from cknet.modules.visual import BACKBONES

    def cell():
        @cknet.register_graph("cell-graph-test")
        def graph():
            return tiny_graph()

        @cknet.register_backbone("cell-cnn-test")
        def backbone(weights):
            return TinyCNN()

        @register_keyword_labeler("cell-graph-test")
        def labeler(graph):
            return KeywordLabeler(graph)

        return graph, backbone, labeler

    first = cell()
    assert cknet.KnowledgeGraph.by_name("cell-graph-test").num_nodes == 3
    with pytest.warns(RegistrationWarning) as caught:
        second = cell()
    assert len(caught) == 3 and all("registered again" in str(w.message) for w in caught)
    registered = (GRAPHS["cell-graph-test"], BACKBONES["cell-cnn-test"], KEYWORD_LABELERS["cell-graph-test"])
    assert registered == second
    assert first != second
    for registry, name in ((GRAPHS, "cell-graph-test"), (BACKBONES, "cell-cnn-test"),
                           (KEYWORD_LABELERS, "cell-graph-test")):
        registry.unregister(name)
        assert name not in registry
    with pytest.raises(ValueError, match="built-in"):
        GRAPHS.unregister("openi40")
    with pytest.raises(ValueError, match="built-in"):
        KNOWLEDGE_SOURCES.unregister("image")
    with pytest.raises(ValueError, match="built-in"):
        cknet.register_knowledge_source(type("Imposter", (cknet.KnowledgeSource,), {"name": "image"}))
