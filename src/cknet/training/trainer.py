"""`Trainer`: the paper's training recipe with resumable checkpoints, DDP and a cache.

Each epoch: train with masked cross-entropy (teacher forcing), clip gradients, step
Adam with two parameter groups (visual extractor, the rest), decay both learning
rates; then validate: teacher-forced loss and BLEU-4 of beam-search reports. The epoch
with the best validation BLEU-4 (or, with ``select_by="loss"``, the lowest validation
loss) is kept (``RUN_DIR/best``, a `CKNet.save_pretrained` directory); the test split is
evaluated once, at the end, with that model.

After every epoch ``RUN_DIR/checkpoint.pt`` is written atomically (temporary file +
rename) with the model, optimizer, scheduler, every random-number generator, the
epoch, the best score and the history; `resume` continues from it, and a run killed
after epoch k and resumed ends with the same weights as one never killed: the shuffle
order of epoch e is drawn from a generator seeded with ``seed + e``, and the global
generators (dropout, random crops) are restored.

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
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cknet.io import write_atomic, write_text_atomic
from cknet.model import CKNet
from cknet.tokenizer import ReportTokenizerBase
from cknet.training.config import TrainingConfig

CHECKPOINT = "checkpoint.pt"


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators.

    Args:
        seed: the seed.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                  "has_gauss": int(numpy_state[3]), "gauss": float(numpy_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["key"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def collate_studies(tokenizer: ReportTokenizerBase) -> Callable[[Sequence[dict]], dict]:
    """A collate function: stacks images (or cached features) and encodes the reports.

    Args:
        tokenizer: the tokenizer that encodes the reports.

    Returns:
        A function from a list of study dicts to a batch dict (``ids``, ``reports``,
        ``input_ids`` ``(B, T)``, and ``images`` or ``maps`` and ``knowledge``).
    """

    def collate(items: Sequence[dict]) -> dict:
        batch: dict[str, Any] = {"ids": [i["id"] for i in items], "reports": [i["report"] for i in items]}
        batch["input_ids"], _ = tokenizer.encode_batch(batch["reports"])
        for key in ("images", "maps", "knowledge"):
            if key in items[0] and items[0][key] is not None:
                batch[key] = torch.stack([i[key] for i in items])
        return batch

    return collate


class FeatureCache(Dataset):
    """Studies with their backbone maps (and graph-model node embeddings) computed once.

    Args:
        model: the CKNet whose frozen backbone (and graph model) computes the features.
        data: a dataset of study dicts with ``images`` (evaluation transform: the cache
            holds one view of each study, without augmentation).
        batch_size: studies per forward pass while filling the cache.
        dtype: storage type of the cached tensors.
        progress: show a progress bar while filling the cache.
    """

    def __init__(self, model: CKNet, data: Dataset, batch_size: int = 16,
                 dtype: torch.dtype = torch.float16, progress: bool = False) -> None:
        from tqdm.auto import tqdm

        self.items: list[dict] = []
        device = model.device
        loader = DataLoader(data, batch_size=batch_size, collate_fn=list)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for items in tqdm(loader, desc="caching features", disable=not progress, leave=False):
                images = torch.stack([i["images"] for i in items]).to(device)
                maps = model.visual_extractor.backbone(images).to("cpu", dtype)
                knowledge = model.knowledge(images) if model.graph_model is not None else None
                for row, item in enumerate(items):
                    self.items.append({
                        "id": item["id"], "report": item["report"], "maps": maps[row],
                        "knowledge": None if knowledge is None else knowledge[row].to("cpu", dtype),
                    })
        model.train(was_training)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


@dataclass
class TrainResult:
    """What `Trainer.fit` returns.

    Attributes:
        history: one record per epoch (losses, validation BLEU-4, learning rates).
        best_epoch: the epoch kept.
        best_bleu4: its validation BLEU-4.
        best_score: its selection score (BLEU-4, or minus the validation loss).
        test: the test metrics of the kept model, when a test split was given.
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_bleu4: float = -math.inf
    best_score: float = -math.inf
    test: dict | None = None


class Trainer:
    """Train a `CKNet` with the paper's recipe.

    Args:
        model: the model (its tokenizer encodes the reports).
        config: the `TrainingConfig`.
        train_data: a dataset of study dicts (``id``, ``images``, ``report``), such as
            `cknet.data.AnnotationDataset`; with ``cache_features`` it should use the
            evaluation transform.
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
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.progress = progress and _rank() == 0
        self.model = model.to(self.device)
        self.collate = collate_studies(model.tokenizer)
        if config.cache_features:
            self.model.visual_extractor.backbone.requires_grad_(False)
            train_data = FeatureCache(self.model, train_data, config.eval_batch_size, progress=self.progress)
        self.train_data, self.val_data, self.test_data = train_data, val_data, test_data
        visual = [p for p in model.visual_extractor.parameters() if p.requires_grad]
        language = [p for p in model.language_model_parameters() if p.requires_grad]
        grouped = {id(p) for p in visual + language}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in grouped]
        groups = [{"params": visual, "lr": config.lr_visual}, {"params": rest, "lr": config.lr_rest}]
        if language:  # a pretrained text encoder being fine-tuned
            groups.append({"params": language, "lr": config.lr_text_encoder})
        self.optimizer = torch.optim.Adam(groups, weight_decay=config.weight_decay, amsgrad=config.amsgrad)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=config.lr_decay)
        self.network: torch.nn.Module = self.model
        if _world() > 1:
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
            "scheduler": self.scheduler.state_dict(), "rng": _rng_state(),
            "best_epoch": self.result.best_epoch, "best_bleu4": self.result.best_bleu4,
            "best_score": self.result.best_score,
            "stale_epochs": self.stale_epochs, "history": json.dumps(self.result.history),
        }
        write_atomic(self.run_dir / CHECKPOINT, lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by `save_checkpoint` (``weights_only`` loading).

        Args:
            path: the checkpoint file.

        Raises:
            ValueError: naming the file when it is not a cknet checkpoint for this model.
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["model"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is not a checkpoint of this model: {err}") from None
        _set_rng_state(state["rng"])
        self.start_epoch = int(state["epoch"]) + 1
        self.result.best_epoch = int(state["best_epoch"])
        self.result.best_bleu4 = float(state["best_bleu4"])
        self.result.best_score = float(state["best_score"])
        self.result.history = json.loads(state["history"])
        self.stale_epochs = int(state["stale_epochs"])

    # ------------------------------------------------------------ loops
    def _batch_loss(self, batch: dict) -> torch.Tensor:
        input_ids = batch["input_ids"].to(self.device)
        autocast = self.device.type == "cuda" and self.config.mixed_precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            if "maps" in batch:
                knowledge = batch.get("knowledge")
                if knowledge is None and self.model.knowledge_bank is not None:
                    knowledge = self.model.knowledge_bank
                maps = batch["maps"].to(self.device, torch.float32)
                knowledge = None if knowledge is None else knowledge.to(self.device, torch.float32)
                out = self.network(None, input_ids, labels=input_ids, features=(maps, knowledge))
            else:
                out = self.network(batch["images"].to(self.device), input_ids, labels=input_ids)
        return out.loss

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training data.

        Args:
            epoch: the epoch's number (seeds its shuffle order).

        Returns:
            The mean training loss.
        """
        from tqdm.auto import tqdm

        generator = torch.Generator().manual_seed(self.config.seed + epoch)
        sampler = None
        if _world() > 1:
            sampler = DistributedSampler(self.train_data, shuffle=True, seed=self.config.seed)
            sampler.set_epoch(epoch)
        loader = DataLoader(self.train_data, batch_size=self.config.batch_size, shuffle=sampler is None,
                            sampler=sampler, generator=generator, collate_fn=self.collate,
                            num_workers=self.config.num_workers, worker_init_fn=_seed_worker)
        self.network.train()
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.config.epochs}", disable=not self.progress)
        for batch in bar:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._batch_loss(batch)
            loss.backward()
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_value_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            total += loss.item() * len(batch["ids"])
            count += len(batch["ids"])
            bar.set_postfix(loss=f"{total / count:.4f}")
        self.scheduler.step()
        return total / max(count, 1)

    @torch.no_grad()
    def evaluate(self, data: Dataset, full: bool = False, limit: int = 0) -> dict:
        """Teacher-forced loss and the BLEU-4 of generated reports.

        Args:
            data: the studies.
            full: also every NLG metric and CE.
            limit: use the first ``limit`` studies only (0: all).

        Returns:
            ``{"loss", "bleu4", "predictions"}`` (and ``"nlg"``, ``"ce"`` when ``full``).
        """
        from cknet.metrics import bleu_4, ce_scores, nlg_scores

        if limit:
            data = torch.utils.data.Subset(data, range(min(limit, len(data))))
        loader = DataLoader(data, batch_size=self.config.eval_batch_size, collate_fn=self.collate,
                            num_workers=self.config.num_workers)
        self.model.eval()
        total, count, references, predictions, ids = 0.0, 0, [], [], []
        for batch in loader:
            images = batch["images"].to(self.device)
            input_ids = batch["input_ids"].to(self.device)
            total += self.model(images, input_ids, labels=input_ids).loss.item() * len(batch["ids"])
            count += len(batch["ids"])
            predictions += self.model.generate(images, num_beams=self.config.eval_num_beams)
            references += batch["reports"]
            ids += batch["ids"]
        dataset = self.model.config.dataset
        metrics: dict[str, Any] = {"loss": total / max(count, 1)}
        if full:
            nlg = nlg_scores(references, predictions, dataset=dataset,
                             max_length=self.model.tokenizer.reference_length)
            metrics.update(nlg=nlg.to_dict(), ce=ce_scores(references, predictions).to_dict())
            metrics["bleu4"] = nlg["BLEU_4"]
        else:
            metrics["bleu4"] = bleu_4(references, predictions, dataset, self.model.tokenizer.reference_length)
        metrics["predictions"] = [{"id": i, "prediction": p, "reference": r}
                                  for i, p, r in zip(ids, predictions, references)]
        return metrics

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
                if key != "epoch":
                    board.add_scalar(key, value, record["epoch"])

    def fit(self) -> TrainResult:
        """Train until ``epochs`` or early stopping, then evaluate the test split once."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for epoch in range(self.start_epoch, self.config.epochs + 1):
            if self.stale_epochs >= self.config.patience:
                break
            train_loss = self.train_epoch(epoch)
            if _rank() == 0:
                val = self.evaluate(self.val_data, limit=self.config.max_eval_studies)
                lrs = self.scheduler.get_last_lr()
                record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"],
                          "val_bleu4": val["bleu4"], "lr_visual": lrs[0], "lr_rest": lrs[1]}
                if len(lrs) > 2:
                    record["lr_text_encoder"] = lrs[2]
                self._log(record)
                score = val["bleu4"] if self.config.select_by == "bleu4" else -val["loss"]
                if score > self.result.best_score:
                    self.result.best_score, self.result.best_epoch = score, epoch
                    self.result.best_bleu4 = val["bleu4"]
                    self.stale_epochs = 0
                    criterion = (f"best validation BLEU-4 {val['bleu4']:.4f}"
                                 if self.config.select_by == "bleu4"
                                 else f"lowest validation loss {val['loss']:.4f} (BLEU-4 {val['bleu4']:.4f})")
                    self.model.save_pretrained(self.run_dir / "best", overwrite=True, training_info={
                        "training data": f"{len(self.train_data)} training studies",
                        "selection": f"epoch {epoch} of {self.config.epochs}, {criterion} "
                                     f"({len(self.val_data)} validation studies, beam "
                                     f"{self.config.eval_num_beams}, cleaned references)",
                        "recipe": self.config.to_dict(),
                    })
                else:
                    self.stale_epochs += 1
                self.save_checkpoint(epoch)
            if _world() > 1:
                flag = torch.tensor([self.stale_epochs], device=self.device)
                dist.broadcast(flag, 0)
                self.stale_epochs = int(flag)
        if _rank() == 0 and self.test_data is not None and (self.run_dir / "best").is_dir():
            best = CKNet.from_pretrained(self.run_dir / "best", map_location=self.device)
            self.model.load_state_dict(best.state_dict())
            test = self.evaluate(self.test_data, full=True)
            predictions = json.dumps(test.pop("predictions"), indent=1) + "\n"
            write_text_atomic(self.run_dir / "test_predictions.json", predictions)
            write_text_atomic(self.run_dir / "test_metrics.json", json.dumps(test, indent=1) + "\n")
            self.result.test = test
        return self.result
