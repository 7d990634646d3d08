"""Reports that state findings: the selection rules, finding-balanced sampling, the
clinical reward and the self-critical stage, and a regression test of the whole
image-to-text path."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import small_config

from cknet import CKNet, CKNetConfig, ReportTokenizer
from cknet.data.synthetic import SyntheticDataset, SyntheticReports, synthetic_graph
from cknet.evaluation import findings_f1, score_reports
from cknet.generation import GenerationConfig, run_search
from cknet.inputs.features import StudyFeatures
from cknet.labeler import CheXpertLabeler
from cknet.modules.graph_model import KnowledgeGraphModel
from cknet.training import GraphPretrainer, Trainer, TrainingConfig
from cknet.training.rewards import CiderD, ReportReward, finding_agreement
from cknet.training.scst import scst_loss
from cknet.training.selection import selection_score


def test_selection_rules():
    scores = {"loss": 2.0, "bleu4": 0.12, "ce_findings_f1": 0.3}
    assert selection_score("bleu4", scores) == 0.12
    assert selection_score("loss", scores) == -2.0
    assert selection_score("ce_findings", scores) == 0.3
    assert selection_score("bleu4+ce_findings", scores) == pytest.approx(0.42)


def test_findings_f1_leaves_out_no_finding():
    labeler = CheXpertLabeler()
    references = ["The heart is enlarged. No effusion.", "Normal chest.", "Small left effusion."]
    predictions = ["Cardiomegaly.", "Normal chest.", "The lungs are clear."]
    result = score_reports(references, predictions, full=False, labeler=labeler)
    # findings: reference {cardiomegaly, effusion}, predicted {cardiomegaly}: tp 1, fn 1, fp 0
    assert result.scores["ce_findings_f1"] == pytest.approx(2 / 3)
    assert findings_f1(result.ce) == pytest.approx(2 / 3)


def test_finding_agreement():
    nan = float("nan")
    reference = np.array([[1, nan, 1, 0], [nan, nan, nan, nan], [nan, 1, nan, nan], [nan, 1, 1, nan]])
    candidate = np.array([[1, nan, 1, nan], [nan, nan, nan, nan], [nan, -1, 1, nan], [nan, 1, nan, nan]])
    assert finding_agreement(reference, candidate).tolist() == pytest.approx([1.0, 1.0, 0.0, 2 / 3])


def cider_d_by_hand(candidate, reference, corpus):
    """CIDEr-D (Vedantam et al. 2015) written out directly from its definition."""
    def grams(words, n):
        return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    documents = [set(g for n in range(1, 5) for g in grams(r.split(), n)) for r in corpus]
    c, r = candidate.split(), reference.split()
    total = 0.0
    def tfidf(words, n):
        return {g: k * math.log(len(corpus) / max(1, sum(g in d for d in documents)))
                for g, k in grams(words, n).items()}

    for n in range(1, 5):
        vc, vr = tfidf(c, n), tfidf(r, n)
        norm_c = math.sqrt(sum(v * v for v in vc.values()))
        norm_r = math.sqrt(sum(v * v for v in vr.values()))
        if norm_c and norm_r:
            dot = sum(min(vc[g], vr[g]) * vr[g] for g in vc if g in vr)
            total += dot / (norm_c * norm_r) * math.exp(-((len(c) - len(r)) ** 2) / 72)
    return 10 * total / 4


def test_cider_d_matches_its_definition():
    corpus = ["the heart is normal .", "the heart is enlarged .", "no pleural effusion .",
              "the lungs are clear .", "there is a small left pleural effusion ."]
    cider = CiderD(corpus)
    for candidate, reference in [("the heart is enlarged .", "the heart is enlarged ."),
                                 ("no effusion . the heart is normal .", "the heart is normal ."),
                                 ("there is a small effusion .", "there is a small left pleural effusion ."),
                                 ("", "the heart is normal .")]:
        expected = cider_d_by_hand(candidate, reference, corpus)
        assert cider.score(candidate, reference) == pytest.approx(expected)
    assert cider.score("the heart is enlarged .", "the heart is enlarged .") > \
        cider.score("the heart is normal .", "the heart is enlarged .")


def test_the_reward_prefers_the_report_that_states_the_finding():
    reward = ReportReward(["The heart is normal.", "The heart is enlarged."] * 3, CheXpertLabeler().label,
                          nlg_weight=0.1)
    reference = "The heart is enlarged. No effusion."
    labels = CheXpertLabeler().label([reference])
    total, ce, _ = reward(["the heart is enlarged .", "the heart is normal ."], [reference] * 2,
                          labels.repeat(2, axis=0))
    assert ce.tolist() == [1.0, 0.0] and total[0] > total[1]


class WordReward:
    """1 for a report holding the word, else 0 (a stand-in for the clinical reward)."""

    def __init__(self, word):
        self.word = word

    def __call__(self, candidates, references, labels):
        reward = np.array([float(self.word in c.split()) for c in candidates])
        return reward, reward, np.zeros(len(reward))


def test_self_critical_steps_make_rewarded_reports_likelier(iu_tokenizer):
    torch.manual_seed(0)
    model = CKNet(small_config(knowledge_source="none", dropout=0.1), iu_tokenizer)
    maps = torch.randn(8, 2, 512, 2, 2)
    references = ["no effusion ."] * 8
    reward = WordReward("effusion")

    def share(samples=8):
        with torch.no_grad():
            encoding = model.eval().encode(features=StudyFeatures(maps))
            found = run_search(model, encoding, 8, iu_tokenizer, GenerationConfig(
                do_sample=True, num_return_sequences=samples).resolve(60),
                generator=torch.Generator().manual_seed(1))
        texts = [iu_tokenizer.decode(row) for row in found.tokens.flatten(0, 1).tolist()]
        return float(np.mean(reward(texts, None, None)[0]))

    before = share()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(15):
        optimizer.zero_grad()
        result = scst_loss(model, {"features": StudyFeatures(maps)}, references, np.zeros((8, 14)), reward,
                           samples=8, generator=torch.Generator().manual_seed(step))
        result.loss.backward()
        optimizer.step()
    assert not model.training  # SCST runs with dropout off
    after = share()
    assert before < 0.2 and after > 0.8, (before, after)


def test_finding_balance_draws_the_asked_share_of_abnormal_studies(tmp_path, iu_tokenizer, iu_annotation):
    entries = iu_annotation["train"][:200]
    labels = CheXpertLabeler().label([e["report"] for e in entries])
    abnormal = {e["id"] for e, row in zip(entries, labels) if (row[1:] == 1).any()}
    assert 0.1 < len(abnormal) / len(entries) < 0.5
    data = [{"id": e["id"], "report": e["report"], "maps": torch.zeros(2, 512, 2, 2),
             "knowledge_matrix": None} for e in entries]
    model = CKNet(small_config(knowledge_source="none"), iu_tokenizer)
    recipe = TrainingConfig(finding_balance=0.5, num_workers=0, batch_size=50, grad_clip=0.0)
    trainer = Trainer(model, recipe, data, data[:4], tmp_path / "run", device="cpu", progress=False)
    drawn = []
    trainer._batch_loss = lambda batch: drawn.extend(batch["ids"]) or torch.zeros((), requires_grad=True)
    trainer.train_epoch(1)
    share = sum(i in abnormal for i in drawn) / len(drawn)
    assert len(drawn) == 200 and 0.4 < share < 0.6  # 0.5 asked; binomial sd 0.035


def finding_rich_studies(count, seed, config, blank=False):
    prevalence = {f: 0.3 for f in ("cardiomegaly", "left pleural effusion", "right pleural effusion",
                                   "support devices", "scoliosis")}
    return SyntheticDataset(count, config, seed=seed, blank=blank, reports=SyntheticReports(prevalence),
                            keep_rendered=True)


@pytest.mark.slow
def test_a_small_model_states_the_findings_its_images_show(tmp_path):
    """The image-to-text path end to end, fast: a graph stage trained briefly on
    finding-rich synthetic studies, a small CKNet on its frozen, cached features trained
    with cross-entropy; its reports must state findings, and far more of them right than
    for the same studies as blank images."""
    torch.manual_seed(0)
    config = CKNetConfig.iu_xray(backbone="shufflenet_v2_x0_5", image_size=64, num_views=1, d_model=64,
                                 d_ff=128, num_heads=4, num_encoder_layers=1, num_decoder_layers=1,
                                 d_knowledge=32, gamma=4, dropout=0.0, knowledge_source="image")
    train, val = finding_rich_studies(480, 0, config), finding_rich_studies(60, 1, config)
    test, blank = finding_rich_studies(100, 2, config), finding_rich_studies(100, 2, config, blank=True)
    graph_model = KnowledgeGraphModel(synthetic_graph(), config.backbone, 32)
    GraphPretrainer(graph_model, epochs=3, batch_size=32, lr=2e-3).fit(train, val)
    model = CKNet(config, ReportTokenizer.from_reports(train.reports()), graph_model=graph_model)
    model.visual_extractor.backbone.load_state_dict(graph_model.backbone.state_dict())
    recipe = TrainingConfig(epochs=15, batch_size=32, lr_rest=3e-3, lr_decay=1.0, grad_clip=0.0,
                            num_workers=0, eval_num_beams=1, eval_batch_size=100, cache_features=True,
                            select_by="loss", patience=15)
    Trainer(model, recipe, train, val, tmp_path / "run", device="cpu", progress=False).fit()
    best = CKNet.from_pretrained(tmp_path / "run" / "best")
    scores = []
    for data in (test, blank):
        generated = best.generate(torch.stack([data[i]["images"] for i in range(len(data))]), num_beams=1)
        predicted, truth = SyntheticReports.read(generated).astype(bool), data.label_matrix().astype(bool)
        tp, fp, fn = (predicted & truth).sum(), (predicted & ~truth).sum(), (~predicted & truth).sum()
        scores.append(2 * tp / (2 * tp + fp + fn))
    assert scores[0] > 0.5 and scores[0] - scores[1] > 0.25, scores
