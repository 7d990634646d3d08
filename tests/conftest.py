"""Shared fixtures: paths to the test data (``tests/fixtures``, or ``$CKNET_SHARED``) and
small models built by the tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton kernels run in Triton's CPU interpreter (set before triton is
# imported; backend="auto" still takes the PyTorch path on the CPU). With one, they are
# compiled for it and the kernel tests run there (benchmarks/gpu_check.sh).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
DEVICE = torch.device("cuda" if torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"
                      else "cpu")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CKNET_SHARED", REPO / "tests" / "fixtures"))
IU_ANNOTATION = SHARED / "data" / "iu_xray" / "annotation.json"
SAMPLES = SHARED / "data" / "samples"


def require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"test data not found: {path} (tests/fixtures is part of the repository; "
                                f"CKNET_SHARED, when set, must hold the same layout)")
    return path


@pytest.fixture(scope="session")
def iu_annotation() -> dict:
    with open(require(IU_ANNOTATION), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def iu_tokenizer(iu_annotation):
    from cknet import ReportTokenizer

    return ReportTokenizer.from_reports([e["report"] for e in iu_annotation["train"]])


@pytest.fixture(scope="session")
def tiny_bert_dir(iu_annotation, tmp_path_factory):
    """A small random BERT with a WordPiece vocabulary trained on the IU train reports,
    saved like a downloaded BioClinicalBERT folder."""
    from cknet.testing import make_tiny_bert

    reports = [e["report"] for e in iu_annotation["train"]]
    return make_tiny_bert(reports, tmp_path_factory.mktemp("tiny_bert"), vocab_size=800,
                          hidden_size=32, num_layers=2, num_heads=2)


def small_config(**overrides):
    """A CKNet config small enough for CPU tests."""
    from cknet import CKNetConfig

    values = dict(
        backbone="resnet18", image_size=64, d_model=64, num_heads=4, d_ff=128,
        num_encoder_layers=2, num_decoder_layers=2, d_knowledge=32, gamma=4, dropout=0.0,
        num_gcn_layers=2,
    )
    values.update(overrides)
    return CKNetConfig.iu_xray(**values)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
