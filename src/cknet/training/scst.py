"""Self-critical sequence training (SCST) with a clinical reward: beyond the paper.

Rennie et al. (CVPR 2017): for each study, K reports are sampled from the model and
one is decoded greedily; each sample's reward (`cknet.training.rewards.ReportReward`:
agreement of its findings with the reference's, plus a weighted CIDEr-D) minus the
greedy report's reward is its advantage, and the loss is

    L = - mean_{study, sample} (R(sample) - R(greedy)) * sum_t log p(w_t | w_<t, image)

so that samples better than what the model writes now become more likely. With a
cross-entropy model that writes the normal template, a sample that states the
finding the reference states earns more than the greedy normal report: this is what
pulls the model off the template. Sampling, the greedy baseline and the gradient pass
all run with dropout off (the model in evaluation mode), so the gradient is taken
under the distribution the samples came from.

`Trainer` runs it as the ``"scst"`` stage (``TrainingConfig.stage``), from a model
trained with cross-entropy (``cknet train --stage scst --init RUN/best``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cknet.generation import GenerationConfig, run_search
from cknet.training.rewards import ReportReward


@dataclass
class SCSTStep:
    """What one SCST step computed.

    Attributes:
        loss: the policy-gradient loss (a scalar with a gradient).
        reward: mean reward of the samples.
        baseline: mean reward of the greedy reports.
        ce: mean CE agreement of the samples.
    """

    loss: torch.Tensor
    reward: float
    baseline: float
    ce: float


def scst_loss(
    model: Any,
    inputs: dict[str, Any],
    references: Sequence[str],
    reference_labels: np.ndarray,
    reward: ReportReward,
    samples: int = 4,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> SCSTStep:
    """The self-critical loss of one batch.

    Args:
        model: a `CKNet` (set to evaluation mode here; the caller restores its mode).
        inputs: the batch for `CKNet.encode`: ``{"images": (B, V, 3, S, S)}`` or
            ``{"features": StudyFeatures}`` (`cknet.inputs.features.encode_inputs`).
        references: the B reference reports.
        reference_labels: their labels, ``(B, k)``, from the reward's labeler.
        reward: the reward.
        samples: K, reports sampled per study.
        temperature: of the sampling.
        generator: random generator of the sampling.

    Returns:
        The `SCSTStep`.
    """
    model.eval()
    tokenizer, config = model.tokenizer, model.config

    batch = len(references)
    with torch.no_grad():
        encoding = model.encode(**inputs)
        sampled = run_search(model, encoding, batch, tokenizer, GenerationConfig(
            do_sample=True, num_return_sequences=samples, temperature=temperature,
        ).resolve(config.max_length), generator=generator)
        greedy = run_search(model, encoding, batch, tokenizer,
                            GenerationConfig(num_beams=1).resolve(config.max_length))
    tokens = sampled.tokens.flatten(0, 1)  # (B*K, 1+T), study-major
    texts = [tokenizer.decode(row) for row in tokens.tolist()]
    rows = np.repeat(np.arange(batch), samples)
    rewards, ce, _ = reward(texts, [references[i] for i in rows], reference_labels[rows])
    greedy_texts = [tokenizer.decode(row[0]) for row in greedy.tokens.tolist()]
    baseline, _, _ = reward(greedy_texts, references, reference_labels)
    advantage = torch.as_tensor(rewards - baseline[rows], dtype=torch.float32, device=tokens.device)

    encoding = model.encode(**inputs).select(torch.as_tensor(rows, device=tokens.device))
    logits = model.decode(tokens[:, :-1], encoding)  # (B*K, T, V)
    targets = tokens[:, 1:]
    logprobs = logits.float().log_softmax(dim=-1).gather(-1, targets[..., None])[..., 0]
    logprobs = logprobs.masked_fill(targets == tokenizer.pad_id, 0.0).sum(dim=1)  # log p of each report
    loss = -(advantage * logprobs).mean()
    return SCSTStep(loss, float(rewards.mean()), float(baseline.mean()), float(ce.mean()))
