"""Share of padding in training batches, shuffled and grouped by report length.

A batch is padded to its longest report; `TrainingConfig.length_grouping` sorts runs of
that many batches' studies by length before cutting them into batches
(`cknet.training.length_batches`). This prints, for IU X-Ray's training reports (from
``../shared``, when present) and for the quick and full demo's synthetic reports, the
share of token positions that are ``<pad>`` over one epoch, the mean of three shuffles.
It counts tokens only; what it saves in time depends on the model (see docs/demo.md).

    python benchmarks/padding.py [--groups 0 4 8 50] [--batch-sizes 16 32]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from shared_data import IU_XRAY
from torch.utils.data import BatchSampler, RandomSampler

from cknet import ReportTokenizer
from cknet.training.length_batches import LengthGroupedBatches

IU_ANNOTATION = IU_XRAY / "annotation.json"


def padding_share(lengths: list[int], batch_size: int, group: int, seed: int) -> float:
    """Share of ``<pad>`` positions over one epoch's batches (``group`` 0: shuffled only)."""
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(range(len(lengths)), generator=generator)
    batches = list(BatchSampler(order, batch_size, drop_last=False) if group == 0
                   else LengthGroupedBatches(order, lengths, batch_size, group, generator))
    positions = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return 1 - sum(lengths) / positions


def report_sets() -> dict[str, list[str]]:
    """The training reports of each corpus measured."""
    from cknet.data.synthetic import SyntheticDataset
    from cknet.demo import FULL, QUICK

    sets = {}
    if IU_ANNOTATION.is_file():
        sets["IU X-Ray train"] = [e["report"] for e in json.loads(IU_ANNOTATION.read_text())["train"]]
    for name, settings in (("demo --quick", QUICK), ("demo", FULL)):
        data = SyntheticDataset(settings.train_studies, settings.model_config(), seed=0)
        sets[f"{name} train (seed 0)"] = [data.report(i) for i in range(len(data))]
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[0, 4, 8, 50])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    args = parser.parse_args()
    print("| reports | studies | batch | length_grouping | padding share |")
    print("|---|---:|---:|---:|---:|")
    for name, reports in report_sets().items():
        tokenizer = ReportTokenizer.from_reports(reports)
        lengths = [len(tokenizer.encode(report)) for report in reports]
        for batch_size in args.batch_sizes:
            for group in args.groups:
                share = statistics.mean(padding_share(lengths, batch_size, group, seed) for seed in range(3))
                print(f"| {name} | {len(reports)} | {batch_size} | {group} | {share:.3f} |")


if __name__ == "__main__":
    main()
