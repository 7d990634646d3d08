"""`TrainingConfig` and the paper's training recipes.

A recipe is a JSON file ``{"model": {CKNetConfig fields}, "training": {TrainingConfig
fields}}``. The built-in ones, ``iu_xray`` and ``mimic_cxr``
(``cknet/resources/configs``), follow the paper (Section IV.C): Adam with learning
rates 1e-3 for the visual extractor and 5e-4 for the rest on IU X-Ray (5e-5 / 1e-4 on
MIMIC-CXR), both decayed by 0.8 per epoch, batch 16, beam 3, the checkpoint chosen by
validation BLEU-4. What the paper leaves open follows R2Gen's released settings:
weight decay 5e-5 with AMSGrad, gradient values clipped at 0.1, 100 epochs on IU X-Ray
(30 on MIMIC-CXR), early stopping after 50 epochs without improvement.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from cknet.config import CKNetConfig
from cknet.field_checks import check_field_types, check_known_keys
from cknet.presets import dataset_preset


@dataclass
class TrainingConfig:
    """Hyper-parameters of a training run.

    Attributes:
        lr_visual: learning rate of the visual extractor.
        lr_rest: learning rate of every other trainable parameter.
        lr_text_encoder: learning rate of a pretrained text encoder being fine-tuned
            (``CKNetConfig.train_text_encoder``).
        lr_decay: factor applied to every learning rate after every epoch.
        weight_decay: Adam's weight decay.
        amsgrad: use the AMSGrad variant of Adam.
        batch_size: studies per step (per process under DDP).
        epochs: maximum number of epochs.
        patience: stop after this many epochs without a better validation score.
        eval_every: validate (and possibly keep the model) after every this many epochs
            and after the last; early stopping and selection see only those epochs.
        select_by: the validation score that picks the kept epoch: ``"bleu4"`` (BLEU-4 of
            generated reports, as R2Gen and the paper), ``"loss"`` (teacher-forced
            cross-entropy, lower is better; steadier on small validation sets),
            ``"ce_findings"`` (CE micro F1 over the findings, "No Finding" excluded,
            by ``training_labeler``: whether reports state what the images show) or
            ``"bleu4+ce_findings"`` (their sum: both lie in [0, 1]). Ties go to the
            higher BLEU-4.
        label_smoothing: of the cross-entropy (0: none, the paper's).
        labeler: the labeler that scores: the validation and test CE the run reports.
            ``"rules"`` (the built-in `cknet.labeler.CheXpertLabeler`, read as CheXbert
            reads reports), ``"rules:chexpert"`` (the CheXpert labeler's conventions) or
            ``"chexbert:CHECKPOINT[,BERT_DIR]"`` (`cknet.labeler.make_labeler`).
        training_labeler: the labeler that steers training, in the same forms: it
            picks the ``finding_balance`` studies, gives the CE of ``select_by`` and the
            ``"scst"`` reward. Apart from ``labeler`` so that the number a run reports
            need not come from the labeler the run was tuned to please.
        finding_balance: the share of each epoch's studies drawn (with replacement) from
            training studies whose report states a finding (by ``training_labeler``);
            0 shuffles the split as it is.
        length_grouping: batches of reports of similar length, padded less
            (`cknet.training.length_batches`): each run of this many batches' studies is
            ordered by report length before it is cut into batches, and the batches are
            shuffled; 0 (off) batches the studies in the order drawn.
        stage: ``"xe"`` (cross-entropy, the paper's) or ``"scst"`` (self-critical
            sequence training with the clinical reward of `cknet.training.scst`, beyond
            the paper; start it from a cross-entropy model).
        scst_samples: reports sampled per study in the ``"scst"`` stage.
        scst_temperature: sampling temperature in the ``"scst"`` stage.
        scst_ce_weight: weight of the CE agreement in the ``"scst"`` reward.
        scst_nlg_weight: weight of CIDEr-D in the ``"scst"`` reward.
        grad_clip: gradients are clipped to [-grad_clip, grad_clip] (0: off).
        seed: seeds Python, NumPy, PyTorch and the data-loader workers.
        num_workers: data-loader worker processes.
        eval_num_beams: beam width of validation and test generation.
        eval_batch_size: studies per generation batch.
        max_eval_studies: evaluate on the first N validation studies only (0: all).
        mixed_precision: ``"bf16"`` autocast on CUDA, or ``"no"``.
        compile: wrap the model in `torch.compile`.
        cache_features: freeze the visual backbone, compute its maps (and the graph
            model's node embeddings) once, and train on the cache.
        flip: random horizontal flips (off: left and right matter in a radiograph).
        skip_invalid: drop studies with missing or unreadable images, and say how many.
    """

    lr_visual: float = 1e-3
    lr_rest: float = 5e-4
    lr_text_encoder: float = 2e-5
    lr_decay: float = 0.8
    weight_decay: float = 5e-5
    amsgrad: bool = True
    batch_size: int = 16
    epochs: int = 100
    patience: int = 50
    eval_every: int = 1
    select_by: Literal["bleu4", "loss", "ce_findings", "bleu4+ce_findings"] = "bleu4"
    label_smoothing: float = 0.0
    labeler: str = "rules"
    training_labeler: str = "rules"
    finding_balance: float = 0.0
    length_grouping: int = 0
    stage: Literal["xe", "scst"] = "xe"
    scst_samples: int = 4
    scst_temperature: float = 1.0
    scst_ce_weight: float = 1.0
    scst_nlg_weight: float = 1.0
    grad_clip: float = 0.1
    seed: int = 9233
    num_workers: int = 2
    eval_num_beams: int = 3
    eval_batch_size: int = 16
    max_eval_studies: int = 0
    mixed_precision: Literal["no", "bf16"] = "no"
    compile: bool = False
    cache_features: bool = False
    flip: bool = False
    skip_invalid: bool = False

    def __post_init__(self) -> None:
        check_field_types(self)
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"TrainingConfig.{spec.name} must be a finite number, got {value}")
        for name in ("lr_visual", "lr_rest", "lr_text_encoder", "lr_decay", "batch_size", "epochs",
                     "patience", "eval_every", "eval_num_beams", "eval_batch_size", "scst_samples",
                     "scst_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainingConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "num_workers", "max_eval_studies", "scst_ce_weight",
                     "scst_nlg_weight", "length_grouping"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainingConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("labeler", "training_labeler"):
            spec = getattr(self, name)
            if spec not in ("rules", "rules:chexpert") and not spec.startswith("chexbert:"):
                raise ValueError(f"TrainingConfig.{name} must be 'rules', 'rules:chexpert' or "
                                 f"'chexbert:CHECKPOINT[,BERT_DIR]', got {spec!r}")
        for name in ("label_smoothing", "finding_balance"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TrainingConfig.{name} must be in [0, 1), got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Build from a dict such as `to_dict` returns; missing keys take their defaults.

        Args:
            data: ``{field: value}``.

        Returns:
            The config.

        Raises:
            ValueError: naming an unknown key or an ill-typed value.
        """
        check_known_keys(cls, data)
        return cls(**data)


def load_recipe(name_or_path: str | os.PathLike[str]) -> tuple[CKNetConfig, TrainingConfig]:
    """Read a recipe: a built-in name (``"iu_xray"``, ``"mimic_cxr"``) or a JSON file.

    Args:
        name_or_path: the recipe's name or file (``{"model": {...}, "training": {...}}``).

    Returns:
        The model and training configs.

    Raises:
        FileNotFoundError: for an unknown name or a missing file.
        ValueError: for a malformed recipe (the message names the key at fault).
    """
    name = os.fspath(name_or_path)
    builtin = resources.files("cknet") / "resources" / "configs" / f"{name}.json"
    if not name.endswith(".json") and builtin.is_file():
        text = builtin.read_text("utf-8")
    elif os.path.isfile(name):
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    else:
        raise FileNotFoundError(f"no recipe {name!r}: use iu_xray, mimic_cxr or a JSON file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or set(data) - {"model", "training"} or not all(
            isinstance(part, dict) for part in data.values()):
        raise ValueError(f"{name}: a recipe is {{'model': {{...}}, 'training': {{...}}}}")
    model, training = dict(data.get("model", {})), dict(data.get("training", {}))
    model_fields = {f.name for f in dataclasses.fields(CKNetConfig)}
    training_fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    for part, keys, other, other_fields in (("model", model, "training", training_fields),
                                            ("training", training, "model", model_fields)):
        misplaced = sorted(k for k in keys if k in other_fields and k not in (model_fields & training_fields))
        if misplaced:
            raise ValueError(f"{name}: {misplaced} under {part!r} are {other} settings: move them under "
                             f"{other!r}")
    try:
        dataset = model.pop("dataset", "iu_xray")
        return CKNetConfig.preset(dataset, **model), TrainingConfig.from_dict(training)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: {err}") from None


def apply_overrides(
    model: CKNetConfig, training: TrainingConfig, overrides: dict[str, Any]
) -> tuple[CKNetConfig, TrainingConfig]:
    """Set fields of either config by name.

    Args:
        model: the model config.
        training: the training config.
        overrides: ``{field: value}`` for fields of either, e.g. ``{"d_model": 256, "epochs": 5}``.

    Returns:
        New model and training configs.

    A new ``dataset`` brings its preset's views and report length (`CKNetConfig.preset`)
    unless ``overrides`` sets them too: ``--config iu_xray --dataset mimic_cxr`` reads one
    view and reports of 100 tokens, not IU X-Ray's two and 60.

    Raises:
        ValueError: naming a key that is a field of neither config.
    """
    model_keys = {f.name for f in dataclasses.fields(CKNetConfig)}
    training_keys = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(overrides) - model_keys - training_keys)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}: not a CKNetConfig or TrainingConfig field")
    fields = {k: v for k, v in overrides.items() if k in model_keys}
    if fields.get("dataset", model.dataset) != model.dataset:
        preset = dataset_preset(fields["dataset"])
        fields = {"num_views": preset.num_views, "max_length": preset.max_length, **fields}
    model = CKNetConfig.from_dict({**model.to_dict(), **fields})
    training = TrainingConfig.from_dict(
        {**training.to_dict(), **{k: v for k, v in overrides.items() if k in training_keys}}
    )
    return model, training
