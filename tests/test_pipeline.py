"""The training pipeline on datasets of the user's own (not an R2Gen folder): the graph
stage trained once and kept in the run, a killed run resumed without redoing it, and
the result equal to an uninterrupted run."""

import json

import pytest
import torch
from conftest import small_config

from cknet import CKNet
from cknet.data.synthetic import SyntheticDataset, synthetic_graph
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.tokenizers import ReportTokenizer
from cknet.training import GraphStage, StudySplits, TrainingConfig, resume, resume_pipeline, run_pipeline

STAGE = GraphStage(backbone="resnet18", d_knowledge=16, epochs=2, batch_size=16, lr=1e-3,
                   static_knowledge=False)


@pytest.fixture(scope="module")
def splits():
    config = model_config()
    return StudySplits(SyntheticDataset(32, config, seed=0, keep_rendered=True),
                       SyntheticDataset(16, config, seed=1, keep_rendered=True),
                       SyntheticDataset(8, config, seed=2, keep_rendered=True))


def model_config():
    return small_config(backbone="resnet18", graph_backbone="resnet18", share_backbone=True, num_views=1,
                        image_size=64, d_model=32, d_ff=64, num_heads=2, num_encoder_layers=1,
                        num_decoder_layers=1, d_knowledge=16, dropout=0.0)


def training(epochs):
    return TrainingConfig(epochs=epochs, batch_size=16, lr_rest=1e-3, seed=0, num_workers=0, eval_num_beams=1,
                          eval_batch_size=16, cache_features=True, patience=epochs)


def pipeline(run_dir, splits, epochs):
    tokenizer = ReportTokenizer.from_reports(splits.train.reports())
    return run_pipeline(run_dir, splits, training(epochs), model_config(), tokenizer, synthetic_graph(),
                        graph_model=STAGE, device="cpu", progress=False)


def weights(path):
    return torch.load(path / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.slow
def test_a_resumed_pipeline_keeps_its_graph_stage_and_equals_an_uninterrupted_one(tmp_path, splits):
    straight = pipeline(tmp_path / "straight", splits, epochs=2)
    assert straight.graph_stage is not None and straight.graph_stage.best_epoch in (1, 2)
    assert straight.training.test is not None  # the third stage: the kept model on the test split
    assert json.loads((tmp_path / "straight" / "test_metrics.json").read_text())["loss"] > 0

    killed = pipeline(tmp_path / "killed", splits, epochs=1)
    saved = KnowledgeGraphModel.from_pretrained(tmp_path / "killed" / "graph_model")
    history = json.loads((tmp_path / "killed" / "graph_model" / "history.json").read_text())
    assert history["settings"]["epochs"] == STAGE.epochs
    resumed = resume_pipeline(tmp_path / "killed", splits, {"epochs": 2}, device="cpu", progress=False)
    assert resumed.graph_stage is None  # read from the run, not trained again
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(),
                                                  resumed.graph_model.state_dict().values()))
    assert [r["epoch"] for r in resumed.training.history] == [1, 2]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert killed.run_dir == tmp_path / "killed"
    kept = CKNet.from_pretrained(tmp_path / "killed" / "best")
    assert kept.graph.nodes == synthetic_graph().nodes

    with pytest.raises(ValueError, match="resume_pipeline"):  # no annotation.json to read the data from
        resume(tmp_path / "killed", device="cpu", progress=False)
    with pytest.raises(FileExistsError, match="already holds a run"):
        pipeline(tmp_path / "killed", splits, epochs=1)


def test_a_built_model_is_trained_as_given_and_its_start_resumes(tmp_path, splits):
    """run_pipeline(model=...) trains the caller's object itself (nothing rebuilt from
    run.json); the run keeps its starting weights in start/, so a run killed before its
    first checkpoint resumes from them and ends where an uninterrupted run ends."""
    import shutil

    tokenizer = ReportTokenizer.from_reports(splits.train.reports())
    config = small_config(knowledge_source="random", backbone="resnet18", num_views=1, image_size=64,
                          d_model=32, d_ff=64, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
                          d_knowledge=16, gamma=4, dropout=0.0)
    torch.manual_seed(0)
    model = CKNet(config, tokenizer, synthetic_graph())
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = TrainingConfig(epochs=1, batch_size=16, lr_rest=1e-3, seed=0, num_workers=0, eval_num_beams=1,
                            eval_batch_size=16, patience=1)
    data = StudySplits(splits.train, splits.val)
    result = run_pipeline(tmp_path / "run", data, recipe, model=model, device="cpu", progress=False)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["init"] == "start"
    start = CKNet.from_pretrained(tmp_path / "run" / "start")
    assert all(torch.equal(start.state_dict()[k], initial[k]) for k in initial)
    trained = weights(tmp_path / "run")
    assert all(torch.equal(model.state_dict()[k].cpu(), trained[k]) for k in trained)  # the object itself
    assert not all(torch.equal(initial[k], trained[k]) for k in trained)
    assert result.graph_model is None

    (tmp_path / "run" / "checkpoint.pt").unlink()  # as if killed before its first checkpoint
    shutil.rmtree(tmp_path / "run" / "best")
    resume_pipeline(tmp_path / "run", data, device="cpu", progress=False)
    again = weights(tmp_path / "run")
    assert all(torch.equal(again[k], trained[k]) for k in trained)
    with pytest.raises(ValueError, match="pass one of them"):
        run_pipeline(tmp_path / "other", data, recipe, config, tokenizer, model=model)
