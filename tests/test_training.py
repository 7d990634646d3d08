import json

import pytest
import torch
from conftest import small_config
from test_annotation import write_dataset

from cknet import CKNet
from cknet.training import TrainingConfig, load_recipe, resume, train
from cknet.training.config import apply_overrides
from cknet.training.seeding import seed_everything


def tiny(**overrides):
    model = small_config(knowledge_source="random", d_model=32, d_ff=64, num_heads=2,
                         num_encoder_layers=1, num_decoder_layers=1, d_knowledge=16)
    training = TrainingConfig(batch_size=8, epochs=2, num_workers=0, eval_num_beams=1,
                              eval_batch_size=8, seed=0, lr_visual=1e-3, lr_rest=1e-3)
    return apply_overrides(model, training, overrides)


def dataset_without_test(root, count=24):
    write_dataset(root, count=count)
    annotation = json.loads((root / "annotation.json").read_text())
    annotation.pop("test")
    (root / "annotation.json").write_text(json.dumps(annotation))
    return root / "annotation.json"


def final_weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    annotation = dataset_without_test(tmp_path / "data")
    model, training = tiny(epochs=2)
    train(model, training, annotation, tmp_path / "straight", device="cpu", progress=False)
    model, training = tiny(epochs=1)
    train(model, training, annotation, tmp_path / "killed", device="cpu", progress=False)
    result = resume(tmp_path / "killed", {"epochs": 2}, device="cpu", progress=False)
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert [r["epoch"] for r in result.history] == [1, 2]
    again = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert [r["val_loss"] for r in again] == [r["val_loss"] for r in result.history]


@pytest.mark.slow
def test_training_lowers_val_loss_raises_bleu_and_evaluates_test_once(tmp_path):
    write_dataset(tmp_path / "data", count=48)
    model, training = tiny(epochs=6, lr_rest=3e-3)
    result = train(model, training, tmp_path / "data" / "annotation.json", tmp_path / "run",
                   device="cpu", progress=False)
    history = result.history
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert result.best_bleu4 > history[0]["val_bleu4"]
    assert result.best_bleu4 == max(r["val_bleu4"] for r in history)
    best = CKNet.from_pretrained(tmp_path / "run" / "best")
    assert best.config.d_model == 32
    card = (tmp_path / "run" / "best" / "README.md").read_text()
    assert f"best validation BLEU-4 {result.best_bleu4:.4f}" in card and "not a medical device" in card
    test = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert test["nlg"]["settings"]["references"] == "cleaned" and "f1" in test["ce"]["scores"]
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,val_loss,val_bleu4") and len(rows) == 7
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(model, training, tmp_path / "data" / "annotation.json", tmp_path / "run")


@pytest.mark.slow
def test_cached_features_mode(tmp_path):
    annotation = dataset_without_test(tmp_path / "data")
    model, training = tiny(epochs=2, cache_features=True, knowledge_source="image")
    result = train(model, training, annotation, tmp_path / "run", device="cpu", progress=False)
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    saved = CKNet.from_pretrained(tmp_path / "run" / "best")
    seed_everything(training.seed)  # the run's initial weights, rebuilt
    initial = CKNet(saved.config, saved.tokenizer, saved.graph).state_dict()
    trained = saved.state_dict()
    backbone = [k for k in trained if k.startswith("visual_extractor.backbone.") and "num_batches" not in k]
    assert backbone and all(torch.equal(trained[k], initial[k]) for k in backbone)  # frozen
    assert not torch.equal(trained["visual_extractor.projection.weight"],
                           initial["visual_extractor.projection.weight"])  # trained on the cache


def test_recipes_follow_the_paper():
    iu_model, iu = load_recipe("iu_xray")
    mimic_model, mimic = load_recipe("mimic_cxr")
    assert (iu.lr_visual, iu.lr_rest, iu.lr_decay, iu.batch_size) == (1e-3, 5e-4, 0.8, 16)
    assert (mimic.lr_visual, mimic.lr_rest) == (5e-5, 1e-4)
    assert iu_model.num_views == 2 and mimic_model.num_views == 1 and mimic_model.max_length == 100
    assert iu_model.backbone == "densenet121" and iu.eval_num_beams == 3
    with pytest.raises(ValueError, match="not_a_field"):
        apply_overrides(iu_model, iu, {"not_a_field": 1})
    with pytest.raises(ValueError, match="TrainingConfig.epochs"):
        apply_overrides(iu_model, iu, {"epochs": "ten"})


def test_a_dataset_given_on_the_command_line_brings_its_preset():
    """--config iu_xray --dataset mimic_cxr: the views and report length are MIMIC-CXR's
    (its preset, resolved when used), unless given too; the rest stays the recipe's."""
    iu_model, iu = load_recipe("iu_xray")
    model, _ = apply_overrides(iu_model, iu, {"dataset": "mimic_cxr"})
    assert (model.dataset, model.num_views, model.max_length) == ("mimic_cxr", 1, 100)
    assert model.backbone_weights == iu_model.backbone_weights == "imagenet"
    model, _ = apply_overrides(iu_model, iu, {"dataset": "mimic_cxr", "max_length": 80})
    assert (model.num_views, model.max_length) == (1, 80)
    model, _ = apply_overrides(iu_model, iu, {"dataset": "iu_xray", "max_length": 70})
    assert (model.num_views, model.max_length) == (2, 70)


@pytest.mark.slow
def test_torchrun_two_processes_give_the_gradients_of_one_process(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    script = str(REPO / "tests" / "ddp_gradients.py")
    single = subprocess.run([sys.executable, script, str(tmp_path / "one.pt")],
                            capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29533", script, str(tmp_path / "two.pt")],
                         capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys() and len(one) > 10
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_train_command_and_resume(tmp_path, capsys):
    from cknet.cli import main

    annotation = dataset_without_test(tmp_path / "data")
    tiny_model = ["--backbone", "resnet18", "--backbone-weights", "null", "--image-size", "64",
                  "--d-model", "32", "--d-ff", "64", "--num-heads", "2", "--num-encoder-layers", "1",
                  "--num-decoder-layers", "1", "--knowledge-source", "random", "--d-knowledge", "16",
                  "--gamma", "4", "--batch-size", "8", "--num-workers", "0", "--eval-num-beams", "1",
                  "--epochs", "1"]
    assert main(["train", "--config", "iu_xray", "--annotation", str(annotation), "--output",
                 str(tmp_path / "run"), "--quiet", "--device", "cpu", *tiny_model]) == 0
    assert "best validation BLEU-4" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--quiet",
                 "--device", "cpu"]) == 0
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "ten", "--quiet"]) == 1


@pytest.mark.slow
def test_train_command_under_torchrun(tmp_path):
    import subprocess
    import sys

    annotation = dataset_without_test(tmp_path / "data", count=16)
    tiny_model = ["--backbone", "resnet18", "--backbone-weights", "null", "--image-size", "64",
                  "--d-model", "32", "--d-ff", "64", "--num-heads", "2", "--num-encoder-layers", "1",
                  "--num-decoder-layers", "1", "--knowledge-source", "random", "--d-knowledge", "16",
                  "--gamma", "4", "--batch-size", "4", "--num-workers", "0", "--eval-num-beams", "1",
                  "--epochs", "2"]
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29534", "-m", "cknet.cli", "train", "--annotation",
                          str(annotation), "--output", str(tmp_path / "run"), "--quiet", "--device", "cpu",
                          *tiny_model], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]  # written once, by rank 0
    assert CKNet.from_pretrained(tmp_path / "run" / "best").config.d_model == 32


@pytest.mark.slow
@pytest.mark.parametrize("select_by, kept, expected", [
    ("loss", 2, "lowest validation loss 1.0000"), ("bleu4", 3, "best validation BLEU-4 0.5000"),
    ("ce_findings", 4, "best validation CE F1 over the findings 0.4000"),
    ("bleu4+ce_findings", 3, "best validation BLEU-4 + CE F1 over the findings 0.7000"),
])
def test_selection_keeps_the_epoch_with_the_best_validation_score(tmp_path, monkeypatch, select_by, kept,
                                                                  expected):
    from cknet.evaluation import Evaluation
    from cknet.training.trainer import Trainer

    # (val loss, val BLEU-4, val CE F1 over the findings) per epoch
    scores = iter([(3.0, 0.1, 0.0), (1.0, 0.2, 0.1), (2.0, 0.5, 0.2), (4.0, 0.3, 0.4)])

    def scripted_evaluate(self, data, full=False, limit=0):
        loss, bleu4, ce = next(scores)
        return Evaluation(loss, {"bleu4": bleu4, "ce_f1": 0.5, "ce_findings_f1": ce})

    monkeypatch.setattr(Trainer, "evaluate", scripted_evaluate)
    annotation = dataset_without_test(tmp_path / "data", count=8)
    model, training = tiny(epochs=4, select_by=select_by)
    result = train(model, training, annotation, tmp_path / "run", device="cpu", progress=False)
    assert result.best_epoch == kept
    assert result.best_bleu4 == [0.1, 0.2, 0.5, 0.3][kept - 1]
    card = (tmp_path / "run" / "best" / "README.md").read_text()
    assert f"epoch {kept} of 4, {expected}" in card
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["val_ce_findings_f1"] for r in history] == [0.0, 0.1, 0.2, 0.4]


@pytest.mark.slow
def test_the_training_labeler_selects_and_the_scoring_labeler_reports(tmp_path, monkeypatch):
    from cknet.evaluation import Evaluation
    from cknet.training.trainer import Trainer

    # The scoring labeler's CE (scripted) peaks at epoch 1; the reports themselves, read
    # by the training labeler (the built-in rules, CheXpert's conventions), state the
    # reference's effusion at epoch 3 only.
    reference = "Small left pleural effusion."
    epochs = iter([(0.9, "No pleural effusion."), (0.5, "No pleural effusion."), (0.1, reference)])

    def scripted_evaluate(self, data, full=False, limit=0):
        ce, text = next(epochs)
        predictions = [{"id": "1", "prediction": text, "reference": reference}]
        return Evaluation(1.0, {"bleu4": 0.1, "ce_f1": ce, "ce_findings_f1": ce}, predictions=predictions)

    monkeypatch.setattr(Trainer, "evaluate", scripted_evaluate)
    annotation = dataset_without_test(tmp_path / "data", count=8)
    model, training = tiny(epochs=3, select_by="ce_findings", labeler="rules",
                           training_labeler="rules:chexpert")
    result = train(model, training, annotation, tmp_path / "run", device="cpu", progress=False)
    assert result.best_epoch == 3
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["val_ce_findings_f1"] for r in history] == [0.9, 0.5, 0.1]  # reported: the scoring labeler's
    assert [r["val_training_ce_findings_f1"] for r in history] == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="training_labeler"):
        TrainingConfig(training_labeler="words.csv")


@pytest.mark.slow
def test_eval_every_validates_every_nth_and_the_last_epoch_and_stops_early(tmp_path, monkeypatch):
    from cknet.evaluation import Evaluation
    from cknet.training.trainer import Trainer

    validated = []
    losses = {2: 2.0, 4: 1.0, 6: 1.5, 8: 1.2, 9: 0.5}

    def scripted_evaluate(self, data, full=False, limit=0):
        validated.append(len(self.result.history) + 1)  # the epoch being validated
        return Evaluation(losses[validated[-1]], {"bleu4": 0.1, "ce_f1": 0.5, "ce_findings_f1": 0.0})

    monkeypatch.setattr(Trainer, "evaluate", scripted_evaluate)
    annotation = dataset_without_test(tmp_path / "data", count=8)
    model, training = tiny(epochs=9, eval_every=2, select_by="loss", patience=10)
    result = train(model, training, annotation, tmp_path / "run", device="cpu", progress=False)
    assert validated == [2, 4, 6, 8, 9]  # every second epoch and the last
    assert result.best_epoch == 9
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["val_loss"] for r in history] == [None, 2.0, None, 1.0, None, 1.5, None, 1.2, 0.5]
    assert all(r["train_loss"] > 0 for r in history)
    card = (tmp_path / "run" / "best" / "README.md").read_text()
    assert "epoch 9 of 9, lowest validation loss 0.5000" in card

    # patience counts epochs since the kept one: kept 4, not better at 6 (2 epochs) and 8 (4 >= 3): stop
    validated.clear()
    model, training = tiny(epochs=9, eval_every=2, select_by="loss", patience=3)
    result = train(model, training, annotation, tmp_path / "stopped", device="cpu", progress=False)
    assert validated == [2, 4, 6, 8]
    assert result.best_epoch == 4 and len(result.history) == 8
    with pytest.raises(ValueError, match="eval_every"):
        TrainingConfig(eval_every=0)
