"""Which epoch a training run keeps: the validation score each rule maximises
(``TrainingConfig.select_by``) and the model card's words for it."""

from __future__ import annotations


def selection_score(rule: str, scores: dict[str, float]) -> float:
    """The number a selection rule maximises (see ``TrainingConfig.select_by``).

    Args:
        rule: ``"bleu4"``, ``"loss"``, ``"ce_findings"`` or ``"bleu4+ce_findings"``.
        scores: validation ``loss``, ``bleu4`` and ``ce_findings_f1``.

    Returns:
        The score, higher is better.
    """
    return {"bleu4": scores["bleu4"], "loss": -scores["loss"], "ce_findings": scores["ce_findings_f1"],
            "bleu4+ce_findings": scores["bleu4"] + scores["ce_findings_f1"]}[rule]


def describe_selection(rule: str, scores: dict[str, float]) -> str:
    """The model card's words for why an epoch was kept.

    Args:
        rule: as in `selection_score`.
        scores: the epoch's validation scores.

    Returns:
        E.g. ``"best validation BLEU-4 0.1500"``.
    """
    also = f"(BLEU-4 {scores['bleu4']:.4f}, CE F1 over the findings {scores['ce_findings_f1']:.4f})"
    return {"bleu4": f"best validation BLEU-4 {scores['bleu4']:.4f}",
            "loss": f"lowest validation loss {scores['loss']:.4f} {also}",
            "ce_findings": f"best validation CE F1 over the findings {scores['ce_findings_f1']:.4f} {also}",
            "bleu4+ce_findings": f"best validation BLEU-4 + CE F1 over the findings "
                                 f"{scores['bleu4'] + scores['ce_findings_f1']:.4f} {also}"}[rule]
