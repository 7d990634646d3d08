"""`Trainer`: the paper's training recipe with resumable checkpoints, DDP and a cache.

Each epoch: train with masked cross-entropy (teacher forcing), clip gradients, step
Adam with two parameter groups (visual extractor, the rest), decay both learning
rates; then validate (every ``eval_every`` epochs and after the last): teacher-forced
loss and BLEU-4 of beam-search reports. The validated epoch with the best validation
BLEU-4 (or, with ``select_by="loss"``, the lowest validation loss) is kept
(``RUN_DIR/best``, a `CKNet.save_pretrained` directory); the test split is evaluated
once, at the end, with that model.

After every epoch ``RUN_DIR/checkpoint.pt`` is written atomically with the model,
optimizer, scheduler, every random-number generator, the epoch, the best score and the
history; `resume` continues from it, and a run killed after epoch k and resumed ends
with the same weights as one never killed: the shuffle order of epoch e is drawn from
a generator seeded with ``seed + e``, and the global generators are restored.

Under ``torchrun`` (several processes), the model is wrapped in
`DistributedDataParallel` (with synchronized batch norm on GPUs), each process reads its
share of the training split through a `DistributedSampler`, and only rank 0 validates,
logs and writes files. The loss of each process is the mean over its own tokens, and
DDP averages the processes' gradients, as R2Gen does.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, WeightedRandomSampler

from cknet.data.collate import collate_studies
from cknet.data.studies import study_ids, study_reports
from cknet.devices import resolve_device
from cknet.evaluation import Evaluation, evaluate, score_reports
from cknet.inputs.features import encode_inputs
from cknet.labeler import make_labeler
from cknet.losses import masked_cross_entropy
from cknet.model import CKNet
from cknet.persistence.checkpoint import read_checkpoint, write_checkpoint
from cknet.persistence.files import write_text_atomic
from cknet.persistence.folders import check_kind, save_folder
from cknet.training.config import TrainingConfig
from cknet.training.distributed import rank, world_size
from cknet.training.feature_cache import FeatureCache
from cknet.training.length_batches import LengthGroupedBatches
from cknet.training.optimizer import adam, parameter_groups
from cknet.training.rewards import ReportReward
from cknet.training.scst import scst_loss
from cknet.training.seeding import rng_state, seed_worker, set_rng_state
from cknet.training.selection import describe_selection, selection_score

CHECKPOINT = "checkpoint.pt"
# The history's validation columns: None in epochs without validation (TrainingConfig.eval_every).
VALIDATION_KEYS = ("val_loss", "val_bleu4", "val_ce_f1", "val_ce_findings_f1")


@dataclass
class TrainResult:
    """What `Trainer.fit` returns.

    Attributes:
        history: one record per epoch (losses, validation BLEU-4 and CE, learning rates);
            the validation values are None in epochs not validated (``eval_every``).
        best_epoch: the epoch kept.
        best_bleu4: its validation BLEU-4.
        best_score: its selection score (see `selection_score`).
        criterion: why it was kept, in words (e.g. ``"best validation BLEU-4 0.1500"``).
        test: the test metrics of the kept model, when a test split was given.
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_bleu4: float = -math.inf
    best_score: float = -math.inf
    criterion: str = ""
    test: dict | None = None


class Trainer:
    """Train a `CKNet` with the paper's recipe.

    Args:
        model: the model (its tokenizer encodes the reports).
        config: the `TrainingConfig`.
        train_data: a dataset of study dicts (``id``, ``images``, ``report``), such as
            `cknet.data.AnnotationDataset`; with ``cache_features`` it should use the
            evaluation transform, or be a `FeatureCache` built beforehand with the same
            frozen backbone (one cache can serve several models: their visual CNN and,
            for the ``"image"`` source, their graph model must be the cache's).
        val_data: the validation studies, in the same form.
        run_dir: where checkpoints, metrics and the best model go.
        test_data: evaluated once, at the end, with the best model.
        device: default CUDA when available (under DDP: the local rank's GPU).
        progress: tqdm bars with loss and ETA.
    """

    def __init__(
        self,
        model: CKNet,
        config: TrainingConfig,
        train_data: Dataset,
        val_data: Dataset,
        run_dir: str | Path,
        test_data: Dataset | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        if rank() == 0 and check_kind(self.run_dir, "run", writing=True) is None:
            save_folder(self.run_dir, "run", lambda folder: None)  # an empty run, marked as one
        self.device = resolve_device(device)
        self.progress = progress and rank() == 0
        self.model = model.to(self.device)
        self.collate = collate_studies(model.tokenizer)
        if config.cache_features:  # the backbone is frozen: its maps are computed once
            self.model.visual_extractor.backbone.requires_grad_(False)
            def cached(data: Dataset) -> Dataset:
                return data if isinstance(data, FeatureCache) else FeatureCache(
                    self.model, data, config.eval_batch_size, progress=self.progress)

            train_data = cached(train_data)
            if rank() == 0:
                val_data = cached(val_data)
        self.train_data, self.val_data, self.test_data = train_data, val_data, test_data
        self.labeler = make_labeler(config.labeler)
        self.training_labeler = (self.labeler if config.training_labeler == config.labeler
                                 else make_labeler(config.training_labeler))
        if world_size() > 1 and config.finding_balance:
            raise ValueError("TrainingConfig.finding_balance is not available under torchrun "
                             "(several processes)")
        if config.finding_balance or config.stage == "scst":
            reports = study_reports(train_data)
            labels = self.training_labeler(reports)
            self.train_labels = {study_id: row for study_id, row in zip(study_ids(train_data), labels)}
            self.abnormal = torch.as_tensor((labels[:, 1:] == 1).any(axis=1))
            self.reward = ReportReward(reports, self.training_labeler, model.config.dataset,
                                       config.scst_ce_weight, config.scst_nlg_weight)
        if config.length_grouping:  # token counts, for batches of similar length
            self.report_lengths = [len(model.tokenizer.encode(r)) for r in study_reports(train_data)]
        self.optimizer = adam(parameter_groups(self.model, config), weight_decay=config.weight_decay,
                              amsgrad=config.amsgrad)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=config.lr_decay)
        self.network: torch.nn.Module = self.model
        if world_size() > 1:
            if self.device.type == "cuda":  # batch norm statistics over the global batch
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if config.compile:
            self.network = torch.compile(self.network)
        self.result = TrainResult()
        self.start_epoch = 1
        self.stale_epochs = 0

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, epoch: int) -> None:
        """Write ``checkpoint.pt`` atomically (rank 0).

        Args:
            epoch: the epoch just finished.
        """
        state = {
            "epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": rng_state(),
            "best_epoch": self.result.best_epoch, "best_bleu4": self.result.best_bleu4,
            "best_score": self.result.best_score, "criterion": self.result.criterion,
            "stale_epochs": self.stale_epochs, "history": json.dumps(self.result.history),
        }
        write_checkpoint(self.run_dir / CHECKPOINT, state)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by `save_checkpoint` (``weights_only`` loading).

        Args:
            path: the checkpoint file.

        Raises:
            ValueError: naming the file when it is empty, truncated, not a torch file of
                plain values (`cknet.persistence.checkpoint`), or not a checkpoint of this
                model; the message says how to restart.
        """
        restart = (f"delete it to restart the run from its first epoch (or from the kept model, "
                   f"`cknet train --init {self.run_dir / 'best'}`)")
        state = read_checkpoint(Path(path), restart)
        try:
            self.model.load_state_dict(state["model"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"])
            self.start_epoch = int(state["epoch"]) + 1
            self.result.best_epoch = int(state["best_epoch"])
            self.result.best_bleu4 = float(state["best_bleu4"])
            self.result.best_score = float(state["best_score"])
            self.result.criterion = str(state.get("criterion", ""))
            self.result.history = json.loads(state["history"])
            self.stale_epochs = int(state["stale_epochs"])
        except (KeyError, RuntimeError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"{path} is not a checkpoint of this run's model ({type(err).__name__}: {err}); "
                             f"{restart}") from None

    def _batch_loss(self, batch: dict) -> torch.Tensor:
        inputs = encode_inputs(batch, self.device)  # images, or cached features
        if self.config.stage == "scst":
            labels = np.stack([self.train_labels[i] for i in batch["ids"]])
            step = scst_loss(self.model, inputs, batch["reports"], labels, self.reward,
                             self.config.scst_samples, self.config.scst_temperature, self.generator)
            self.scst_totals += np.array([step.reward, step.baseline, step.ce]) * len(batch["ids"])
            return step.loss
        input_ids = batch["input_ids"].to(self.device)
        autocast = self.device.type == "cuda" and self.config.mixed_precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = self.network(inputs.get("images"), input_ids, features=inputs.get("features")).logits
        pad_id = self.model.tokenizer.pad_id
        return masked_cross_entropy(logits, input_ids, pad_id, self.config.label_smoothing)

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training data.

        Args:
            epoch: the epoch's number (seeds its shuffle order).

        Returns:
            The mean training loss.
        """
        from tqdm.auto import tqdm

        generator = torch.Generator().manual_seed(self.config.seed + epoch)
        self.generator = torch.Generator(self.device).manual_seed(self.config.seed + epoch + rank())
        self.scst_totals = np.zeros(3)
        sampler = None
        if world_size() > 1:
            sampler = DistributedSampler(self.train_data, shuffle=True, seed=self.config.seed)
            sampler.set_epoch(epoch)
        elif self.config.finding_balance:
            share = float(self.abnormal.float().mean())
            weights = torch.where(self.abnormal, self.config.finding_balance / max(share, 1e-9),
                                  (1 - self.config.finding_balance) / max(1 - share, 1e-9))
            sampler = WeightedRandomSampler(weights.double(), len(weights), replacement=True,
                                            generator=generator)
        batching = {"batch_size": self.config.batch_size, "shuffle": sampler is None, "sampler": sampler,
                    "generator": generator}
        if self.config.length_grouping:  # batches of similar report length, padded less
            order = sampler or RandomSampler(self.train_data, generator=generator)
            batching = {"batch_sampler": LengthGroupedBatches(
                order, self.report_lengths, self.config.batch_size, self.config.length_grouping, generator)}
        loader = DataLoader(self.train_data, collate_fn=self.collate, num_workers=self.config.num_workers,
                            worker_init_fn=seed_worker, **batching)
        self.network.train()
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.config.epochs}", disable=not self.progress)
        for batch in bar:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._batch_loss(batch)
            if not bool(torch.isfinite(loss)):
                raise ValueError(f"the training loss is {loss.item()} in epoch {epoch} (studies "
                                 f"{batch['ids'][:3]} ...): lower the learning rate, or check the data "
                                 f"and weights for NaN")
            loss.backward()
            if self.config.stage == "scst" and world_size() > 1:  # the loss ran outside DDP
                for parameter in self.model.parameters():
                    if parameter.grad is not None:
                        dist.all_reduce(parameter.grad)
                        parameter.grad /= world_size()
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_value_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            total += loss.item() * len(batch["ids"])
            count += len(batch["ids"])
            bar.set_postfix(loss=f"{total / count:.4f}")
        self.scheduler.step()
        return total / max(count, 1)

    def evaluate(self, data: Dataset, full: bool = False, limit: int = 0) -> Evaluation:
        """Teacher-forced loss and the scores of generated reports (`cknet.evaluation`):
        BLEU-4 and CE with the run's labeler (``TrainingConfig.labeler``); every NLG
        metric with ``full``.

        Args:
            data: the studies (images, or cached features).
            full: every NLG metric (METEOR needs Java).
            limit: use the first ``limit`` studies only (0: all).

        Returns:
            The `Evaluation`.
        """
        decoding = self.model.generation_config.updated(num_beams=self.config.eval_num_beams)
        return evaluate(self.model, data, decoding, self.config.eval_batch_size, limit, full, self.labeler,
                        num_workers=self.config.num_workers)

    def _log(self, record: dict) -> None:
        self.result.history.append(record)
        write_text_atomic(self.run_dir / "metrics.json", json.dumps(self.result.history, indent=1) + "\n")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(record))
        writer.writeheader()
        writer.writerows(self.result.history)
        write_text_atomic(self.run_dir / "metrics.csv", buffer.getvalue())
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        with SummaryWriter(self.run_dir / "tensorboard") as board:
            for key, value in record.items():
                if key != "epoch" and value is not None:
                    board.add_scalar(key, value, record["epoch"])

    def _training_ce(self, evaluation: Evaluation) -> float:
        """CE F1 over the findings of validation reports by ``training_labeler``."""
        predictions = evaluation.predictions
        scored = score_reports([p["reference"] for p in predictions], [p["prediction"] for p in predictions],
                               self.model.config.dataset, full=False, labeler=self.training_labeler)
        return float(scored.scores["ce_findings_f1"])

    def _select(self, epoch: int, val: dict[str, float]) -> None:
        """Keep the model in ``RUN_DIR/best`` when ``val`` beats the best validation so far."""
        score = selection_score(self.config.select_by, val)
        better = score > self.result.best_score or (
            score == self.result.best_score and val["bleu4"] > self.result.best_bleu4)
        if not better:
            self.stale_epochs = epoch - self.result.best_epoch
            return
        self.result.best_score, self.result.best_epoch = score, epoch
        self.result.best_bleu4 = val["bleu4"]
        self.stale_epochs = 0
        criterion = self.result.criterion = describe_selection(self.config.select_by, val)
        self.model.save_pretrained(self.run_dir / "best", overwrite=True, training_info={
            "training data": f"{len(self.train_data)} training studies",
            "selection": f"epoch {epoch} of {self.config.epochs}, {criterion} "
                         f"({len(self.val_data)} validation studies, beam "
                         f"{self.config.eval_num_beams}, cleaned references)",
            "recipe": self.config.to_dict(),
        })

    def fit(self) -> TrainResult:
        """Train until ``epochs`` or early stopping, then evaluate the test split once."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for epoch in range(self.start_epoch, self.config.epochs + 1):
            if self.stale_epochs >= self.config.patience:
                break
            train_loss = self.train_epoch(epoch)
            if rank() == 0:
                record = {"epoch": epoch, "train_loss": train_loss, **dict.fromkeys(VALIDATION_KEYS)}
                if self.training_labeler is not self.labeler:
                    record["val_training_ce_findings_f1"] = None
                validate = epoch % self.config.eval_every == 0 or epoch == self.config.epochs
                if validate:
                    evaluation = self.evaluate(self.val_data, limit=self.config.max_eval_studies)
                    val = {"loss": evaluation.loss, **evaluation.scores}
                    record.update(zip(VALIDATION_KEYS, (val["loss"], val["bleu4"], val["ce_f1"],
                                                        val["ce_findings_f1"])))
                    if self.training_labeler is not self.labeler:  # select_by reads the training labeler
                        val["ce_findings_f1"] = self._training_ce(evaluation)
                        record["val_training_ce_findings_f1"] = val["ce_findings_f1"]
                lrs = self.scheduler.get_last_lr()
                record.update(lr_visual=lrs[0], lr_rest=lrs[1])
                if len(lrs) > 2:
                    record["lr_text_encoder"] = lrs[2]
                if self.config.stage == "scst":
                    seen = max(len(self.train_data), 1)
                    record.update(zip(("train_reward", "train_greedy_reward", "train_ce_agreement"),
                                      (float(v) for v in self.scst_totals / seen)))
                self._log(record)
                if validate:
                    self._select(epoch, val)
                self.save_checkpoint(epoch)
            if world_size() > 1:
                flag = torch.tensor([self.stale_epochs], device=self.device)
                dist.broadcast(flag, 0)
                self.stale_epochs = int(flag)
        if rank() == 0 and self.test_data is not None and (self.run_dir / "best").is_dir():
            best = CKNet.from_pretrained(self.run_dir / "best", map_location=self.device)
            self.model.load_state_dict(best.state_dict())
            evaluation = self.evaluate(self.test_data, full=True)
            test = {"loss": evaluation.loss, "bleu4": evaluation.scores["bleu4"], "scores": evaluation.scores,
                    "nlg": evaluation.nlg, "ce": evaluation.ce}
            predictions = json.dumps(evaluation.predictions, indent=1) + "\n"
            write_text_atomic(self.run_dir / "test_predictions.json", predictions)
            write_text_atomic(self.run_dir / "test_metrics.json", json.dumps(test, indent=1) + "\n")
            self.result.test = test
        return self.result

