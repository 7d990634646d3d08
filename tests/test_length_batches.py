"""Batches of reports of similar length (`TrainingConfig.length_grouping`)."""

from collections import Counter

import pytest
import torch
from conftest import small_config

from cknet import CKNet
from cknet.training import Trainer, TrainingConfig
from cknet.training.length_batches import LengthGroupedBatches


def test_runs_are_sorted_by_length_and_cut_into_batches():
    """Brute force on a tiny case: runs of group * batch_size studies in the sampler's
    order, each sorted by length, cut into batches; the batches come in shuffled order."""
    order = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5]
    lengths = [30, 5, 12, 40, 8, 22, 3, 17, 9, 26]
    batches = list(LengthGroupedBatches(order, lengths, batch_size=2, group=2,
                                        generator=torch.Generator().manual_seed(0)))
    expected = []
    for run in ([7, 2, 9, 0], [4, 1, 8, 3], [6, 5]):
        run = sorted(run, key=lambda i: lengths[i])
        expected += [run[i:i + 2] for i in range(0, len(run), 2)]
    assert sorted(batches) == sorted(expected) and len(batches) == 5
    assert len(LengthGroupedBatches(order, lengths, 2, 2, torch.Generator())) == 5
    assert len(LengthGroupedBatches(order, lengths, 3, 2, torch.Generator())) == 4  # 6 + 4 studies: 2 + 2
    assert len(list(LengthGroupedBatches(order, lengths, 3, 2, torch.Generator()))) == 4
    with pytest.raises(ValueError, match="group must be at least 1"):
        LengthGroupedBatches(order, lengths, 2, 0, torch.Generator())
    with pytest.raises(ValueError, match="length_grouping must be >= 0"):
        TrainingConfig(length_grouping=-1)


def test_repeated_draws_are_kept():
    """A sampler with replacement (finding balance) keeps its multiset of draws."""
    order = [3, 3, 1, 0, 3, 2, 2]
    batches = LengthGroupedBatches(order, [4, 1, 7, 2], batch_size=3, group=2, generator=torch.Generator())
    assert Counter(i for batch in batches for i in batch) == Counter(order)


def epoch_batches(trainer):
    """The ``input_ids`` and ids of the batches of one training epoch (no step taken)."""
    batches = []
    trainer._batch_loss = lambda batch: batches.append(batch) or torch.zeros((), requires_grad=True)
    trainer.train_epoch(1)
    return batches


def test_trainer_batches_real_reports_with_less_padding(tmp_path, iu_tokenizer, iu_annotation):
    """On IU X-Ray's reports the trainer's epoch sees every study once and pads far
    less with length grouping than without."""
    entries = iu_annotation["train"][:320]
    data = [{"id": e["id"], "report": e["report"], "maps": torch.zeros(2, 512, 2, 2),
             "knowledge_matrix": None} for e in entries]
    model = CKNet(small_config(knowledge_source="none"), iu_tokenizer)
    padded = {}
    for grouping in (0, 8):
        recipe = TrainingConfig(length_grouping=grouping, num_workers=0, batch_size=16, grad_clip=0.0)
        trainer = Trainer(model, recipe, data, data[:4], tmp_path / f"run{grouping}", device="cpu",
                          progress=False)
        batches = epoch_batches(trainer)
        assert sorted(i for batch in batches for i in batch["ids"]) == sorted(e["id"] for e in entries)
        cells = sum(batch["input_ids"].numel() for batch in batches)
        tokens = sum(int((batch["input_ids"] != iu_tokenizer.pad_id).sum()) for batch in batches)
        padded[grouping] = 1 - tokens / cells
    assert padded[8] < 0.5 * padded[0], padded
