"""`CheXbertLabeler`: the published CheXbert model (Smit et al., EMNLP 2020), rebuilt with
``transformers`` and loaded from its checkpoint file, offline.

The model: a ``bert-base-uncased`` encoder whose ``[CLS]`` state feeds 13 four-way heads
(Enlarged Cardiomediastinum ... Support Devices, in CheXbert's order) and one two-way
head (No Finding). The classes of a four-way head are 0 blank, 1 positive, 2 negative,
3 uncertain; of the two-way head 0 blank, 1 positive. They are returned as CheXpert's
labels, in CheXpert's column order (`cknet.labeler.OBSERVATIONS`): 1 positive, 0
negative, -1 uncertain, NaN blank, exactly like `CheXpertLabeler.label`.

As CheXbert prepares a report: surrounding spaces stripped, newlines and runs of
whitespace folded into one space, WordPiece tokens between ``[CLS]`` and ``[SEP]``, and a
report longer than 512 pieces cut to its first 510 pieces and ``[SEP]``; an empty report is
``[CLS] [SEP]``.

The checkpoint (``chexbert.pth``, from the CheXbert repository's download link) is a
torch save of ``{"model_state_dict": ...}`` whose keys carry DataParallel's ``module.``
prefix; it is read with ``torch.load(..., weights_only=True)``, so nothing in it runs.
The tokenizer and the encoder's architecture come from a local ``bert-base-uncased``
folder (``hf download bert-base-uncased --local-dir DIR`` on a machine with internet).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import BertConfig

from cknet.devices import resolve_device
from cknet.labeler.chexpert import OBSERVATIONS
from cknet.persistence.weights import read_torch_file

# CheXbert's head order (its constants.CONDITIONS).
HEADS = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
         "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
         "Fracture", "Support Devices", "No Finding")
# class index -> CheXpert label, for the four-way heads and the No Finding head
FOUR_WAY = (np.nan, 1.0, 0.0, -1.0)
TWO_WAY = (np.nan, 1.0)
MAX_PIECES = 512


class CheXbertModel(nn.Module):
    """BERT with CheXbert's 14 heads over the ``[CLS]`` state.

    Args:
        config: a ``transformers.BertConfig`` (``bert-base-uncased``'s).
    """

    def __init__(self, config: BertConfig) -> None:
        from transformers import BertModel

        super().__init__()
        self.bert = BertModel(config)
        hidden = config.hidden_size
        self.linear_heads = nn.ModuleList([nn.Linear(hidden, 4) for _ in range(13)] + [nn.Linear(hidden, 2)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The predicted class of each head.

        Args:
            input_ids: ``(B, T)`` padded WordPiece ids.
            attention_mask: ``(B, T)`` 1 on real pieces.

        Returns:
            ``(B, 14)`` class indices, heads in CheXbert's order.
        """
        cls = self.embed(input_ids, attention_mask)
        return torch.stack([head(cls).argmax(dim=-1) for head in self.linear_heads], dim=1)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The ``[CLS]`` state of the last layer, which the heads read (and SembScore compares).

        Args:
            input_ids: ``(B, T)`` padded WordPiece ids.
            attention_mask: ``(B, T)`` 1 on real pieces.

        Returns:
            ``(B, hidden)``.
        """
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]


class CheXbertLabeler:
    """Label reports for the 14 CheXpert observations with the CheXbert model.

    Args:
        checkpoint: the published checkpoint file (``chexbert.pth``).
        bert_dir: a local ``bert-base-uncased`` folder (tokenizer and ``config.json``), or
            its hub id when online.
        device: where to run (default: CUDA when available).
        batch_size: reports per forward pass.

    Raises:
        FileNotFoundError: for a missing checkpoint.
        ValueError: for a file that is not CheXbert's checkpoint (naming the missing or
            unexpected weights).
        OSError: when ``bert_dir`` is neither a folder nor downloadable (the message says
            how to fetch it).
    """

    observations: tuple[str, ...] = OBSERVATIONS

    def __init__(self, checkpoint: str | os.PathLike[str],
                 bert_dir: str | os.PathLike[str] = "bert-base-uncased",
                 device: str | torch.device | None = None, batch_size: int = 16) -> None:
        from transformers import AutoConfig, AutoTokenizer

        from cknet.persistence.hub import check_hf_config_sizes, load_hf_pretrained

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.device = resolve_device(device)
        if not Path(checkpoint).expanduser().is_file():  # before the BERT folder, which may be missing too
            raise FileNotFoundError(f"CheXbert checkpoint not found: {checkpoint} (chexbert.pth, from the "
                                    f"download link in the CheXbert repository's README)")
        checkpoint = Path(checkpoint).expanduser()
        self.tokenizer = load_hf_pretrained(AutoTokenizer, bert_dir, "CheXbert tokenizer (bert-base-uncased)",
                                            offline=True)
        config = check_hf_config_sizes(
            load_hf_pretrained(AutoConfig, bert_dir, "CheXbert encoder config (bert-base-uncased)",
                               offline=True), bert_dir)
        self.model = CheXbertModel(config)
        self.model.load_state_dict(_checkpoint_state(Path(checkpoint), self.model), strict=True)
        self.model.to(self.device).eval()
        self._order = [HEADS.index(o) for o in OBSERVATIONS]

    def encode(self, report: str) -> list[int]:
        """A report's WordPiece ids as CheXbert builds them (see the module docstring).

        Args:
            report: the report text.

        Returns:
            ``[CLS] pieces... [SEP]``, at most 512 ids.
        """
        text = re.sub(r"\s+", " ", report.strip().replace("\n", " ")).strip()
        pieces = self.tokenizer.tokenize(text)
        ids = [self.tokenizer.cls_token_id, *self.tokenizer.convert_tokens_to_ids(pieces),
               self.tokenizer.sep_token_id]
        if len(ids) > MAX_PIECES:
            ids = ids[: MAX_PIECES - 1] + [self.tokenizer.sep_token_id]
        return ids

    @torch.no_grad()
    def label(self, reports: Iterable[str]) -> np.ndarray:
        """Label report texts.

        Args:
            reports: report texts.

        Returns:
            ``(num_reports, 14)`` float array of 1, 0, -1 and NaN, columns in the order
            of `observations` (CheXpert's).

        Raises:
            ValueError: if ``reports`` is one string rather than a list, or a report is
                not a string.
        """
        rows = self._batches(reports, self.model)
        if not rows:
            return np.zeros((0, len(OBSERVATIONS)))
        classes = torch.cat(rows).numpy()  # (n, 14) heads in CheXbert's order
        labels = np.empty(classes.shape)
        labels[:, :13] = np.take(FOUR_WAY, classes[:, :13])
        labels[:, 13] = np.take(TWO_WAY, classes[:, 13])
        return labels[:, self._order]

    def _batches(self, reports: Iterable[str], run) -> list[torch.Tensor]:
        """``run(ids, mask)`` over the encoded reports in batches, checked first."""
        if isinstance(reports, str):
            raise ValueError("reports must be a list of report texts, not one string")
        reports = list(reports)
        bad = next((i for i, r in enumerate(reports) if not isinstance(r, str)), None)
        if bad is not None:
            raise ValueError(f"report {bad} is a {type(reports[bad]).__name__}, not a str")
        rows = []
        for start in range(0, len(reports), self.batch_size):
            encoded = [torch.tensor(self.encode(r)) for r in reports[start:start + self.batch_size]]
            ids = nn.utils.rnn.pad_sequence(encoded, batch_first=True,
                                            padding_value=self.tokenizer.pad_token_id)
            lengths = torch.tensor([len(e) for e in encoded])
            mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
            rows.append(run(ids.to(self.device), mask.to(self.device)).cpu())
        return rows

    @torch.no_grad()
    def embed(self, reports: Iterable[str]) -> np.ndarray:
        """CheXbert's embedding of each report: the ``[CLS]`` state of its last layer (what
        SembScore, `cknet.metrics.semb`, compares).

        Args:
            reports: report texts.

        Returns:
            ``(num_reports, hidden)`` float64.

        Raises:
            ValueError: as `label`.
        """
        rows = self._batches(reports, self.model.embed)
        hidden = self.model.bert.config.hidden_size
        return torch.cat(rows).double().numpy() if rows else np.zeros((0, hidden))

    def __call__(self, reports: Iterable[str]) -> np.ndarray:
        """`label`.

        Args:
            reports: report texts.
        """
        return self.label(reports)


def _checkpoint_state(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights from CheXbert's checkpoint file, checked against ``model``."""
    if not path.is_file():
        raise FileNotFoundError(f"CheXbert checkpoint not found: {path}")
    try:
        saved = read_torch_file(path, f"CheXbert checkpoint {path}")
    except ValueError as err:
        raise ValueError(f"{err}: not a readable torch checkpoint; CheXbert's is chexbert.pth from its "
                         f"repository") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("model_state_dict"), dict):
        raise ValueError(f"{path} holds no 'model_state_dict': not CheXbert's checkpoint")
    state = {key.removeprefix("module."): value for key, value in saved["model_state_dict"].items()}
    expected = model.state_dict()
    if "bert.embeddings.position_ids" not in expected:
        state.pop("bert.embeddings.position_ids", None)  # a buffer older transformers saved
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not fit the CheXbert model built from the bert-base-uncased config: missing "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}, of another shape {wrong[:5]}"
        )
    return state
