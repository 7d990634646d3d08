"""Helper for test_training: gradients of one step, in one process or under torchrun.

    python ddp_gradients.py OUT.pt             # one process, the whole batch
    torchrun --nproc_per_node 2 ddp_gradients.py OUT.pt   # each rank half the batch
"""

import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
from conftest import small_config

from cknet import CKNet, ReportTokenizer

REPORTS = ["the heart is normal . no effusion .", "the heart is enlarged . no effusion .",
           "small left pleural effusion . no edema .", "the lungs are clear . no edema ."]


def main() -> None:
    out = sys.argv[1]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    torch.manual_seed(0)
    tokenizer = ReportTokenizer.from_reports(REPORTS, threshold=1)
    config = small_config(knowledge_source="random", max_length=60, d_model=32, d_ff=64, num_heads=2)
    model = CKNet(config, tokenizer)
    model.visual_extractor.backbone.eval()  # batch norm statistics would differ per half batch
    images = torch.randn(4, 2, 3, 64, 64)
    ids, _ = tokenizer.encode_batch(REPORTS)  # equal lengths: the per-rank means average exactly
    network = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    share = slice(rank * 4 // world, (rank + 1) * 4 // world)
    network(images[share], ids[share], labels=ids[share]).loss.backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, out)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
