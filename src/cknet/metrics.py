"""Evaluation metrics: natural-language generation (NLG), clinical efficacy (CE), ROC AUC.

`nlg_scores` gives BLEU-1..4, METEOR, ROUGE-L and CIDEr through pycocoevalcap, the
numbers a direct call of its scorers gives on the same strings (as the R2Gen family
calls them: one reference per report, no PTB tokenizer). METEOR runs the same Java jar
with the same protocol, but writes all input at once and reads all output with a time
limit, so it can neither deadlock nor die of a broken pipe; without Java it is
reported unavailable with a one-line reason and the other metrics are still computed.

`ce_scores`: precision, recall, F1, accuracy and AUC of the 14 CheXpert observations
extracted from generated vs reference reports, with micro, macro or example-based
averaging and an explicit policy for uncertain labels; every result states both.

`roc_auc`: the area under the ROC curve, computed exactly from ranks (the
Mann-Whitney U statistic, ties counted as one half), per column of a label matrix.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cknet.config import dataset_preset
from cknet.tokenizers.base import clean_report

NLG_METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")


@dataclass(eq=False)
class MetricReport(Mapping[str, "float | None"]):
    """Scores with the settings that produced them; a read-only mapping of the scores
    (``report["BLEU_4"]``, ``for name in report``, ``dict(report)``, ``len``, ``in``).

    Attributes:
        scores: metric name -> value (None when a metric could not be computed).
        settings: how they were computed (e.g. which references, averaging, policy).
        notes: one-line explanations (e.g. why METEOR is missing).
        table: optional per-item rows (e.g. one per observation).
    """

    scores: dict[str, float | None]
    settings: dict[str, str]
    notes: list[str] = field(default_factory=list)
    table: list[dict] = field(default_factory=list)

    def __getitem__(self, name: str) -> float | None:
        return self.scores[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scores)

    def __len__(self) -> int:
        return len(self.scores)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"scores": self.scores, "settings": self.settings, "notes": self.notes,
                "table": self.table}

    def __str__(self) -> str:
        lines = [", ".join(f"{k}: {v}" for k, v in self.settings.items())]
        for name, value in self.scores.items():
            lines.append(f"  {name:<12} {'n/a' if value is None else f'{value:.4f}'}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _texts(name: str, texts: object) -> list[str]:
    """``texts`` as a list of strings, or a `ValueError` naming ``name``."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"{name} must be a list of report texts, got {type(texts).__name__}")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] must be a report text, got {type(texts[bad]).__name__}")
    return list(texts)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _no_newline(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def meteor_score(
    references: dict[int, list[str]], predictions: dict[int, list[str]], timeout: float = 120.0
) -> tuple[float, list[float]]:
    """METEOR 1.5 with pycocoevalcap's jar, arguments (``-l en -norm``) and protocol.

    Unlike pycocoevalcap's wrapper, output and error streams are drained by threads and
    every answer is awaited with a time limit, so a dead or stuck Java process gives an
    error instead of a broken pipe or a hang; newlines inside a text are folded.

    Args:
        references: ``{id: [text]}`` as pycocoevalcap takes them.
        predictions: ``{id: [text]}``, the same ids.
        timeout: seconds to wait for any one answer of the Java process.

    Returns:
        The corpus score and the per-report scores.

    Raises:
        RuntimeError: when Java is missing, fails or stops answering (the message says which).
    """
    import queue
    import threading

    if shutil.which("java") is None:
        raise RuntimeError("Java was not found on PATH (METEOR needs a Java runtime)")
    import pycocoevalcap.meteor.meteor as meteor_module

    folder = os.path.dirname(os.path.abspath(meteor_module.__file__))
    command = ["java", "-jar", "-Xmx2G", meteor_module.METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"]
    process = subprocess.Popen(command, cwd=folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)
    answers: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []

    def read_answers() -> None:
        for line in process.stdout:
            answers.put(line.strip())
        answers.put(None)

    threading.Thread(target=read_answers, daemon=True).start()
    threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True).start()

    def ask(line: str, count: int) -> list[str]:
        try:
            process.stdin.write(line + "\n")
            process.stdin.flush()
            out = [answers.get(timeout=timeout) for _ in range(count)]
        except (BrokenPipeError, queue.Empty):
            out = [None]
        if None in out:
            process.kill()
            detail = errors[-1].strip() if errors else "no answer"
            raise RuntimeError(f"METEOR's Java process stopped answering: {detail}")
        return out

    try:
        stats = []
        for key in references:
            refs = [_no_newline(r) for r in references[key]]
            hypothesis = _no_newline(predictions[key][0]).replace("|||", "").replace("  ", " ")
            stats.extend(ask(" ||| ".join(("SCORE", " ||| ".join(refs), hypothesis)), 1))
        scores = ask("EVAL ||| " + " ||| ".join(stats), len(stats) + 1)
    finally:
        if process.poll() is None:
            process.stdin.close()
            process.kill()
        process.wait()
    return float(scores[-1]), [float(x) for x in scores[:-1]]


def bleu_4(
    references: Sequence[str], predictions: Sequence[str], dataset: str = "iu_xray",
    max_length: int | None = None,
) -> float:
    """BLEU-4 alone, on cleaned reports as `nlg_scores` computes it (``"cleaned"`` form);
    for validation during training, where METEOR's Java start would cost seconds.

    Args:
        references: the reference reports.
        predictions: the generated reports, in the same order.
        dataset: the cleaning rules, ``"iu_xray"`` or ``"mimic_cxr"``.
        max_length: references are truncated as the tokenizer does (default: the
            dataset's).

    Returns:
        Corpus BLEU-4 (pycocoevalcap).

    Raises:
        ValueError: for inputs that are not lists of texts of the same length."""
    from pycocoevalcap.bleu.bleu import Bleu

    references, predictions = _texts("references", references), _texts("predictions", predictions)
    if len(references) != len(predictions) or not references:
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions "
                         f"(as many of each, at least one)")
    limit = dataset_preset(dataset).max_length if max_length is None else int(max_length)
    gts = {i: [" ".join(clean_report(r, dataset).split()[: limit - 2])] for i, r in enumerate(references)}
    res = {i: [_one_line(clean_report(p, dataset))] for i, p in enumerate(predictions)}
    return float(Bleu(4).compute_score(gts, res, verbose=0)[0][3])


def nlg_scores(
    references: Sequence[str],
    predictions: Sequence[str],
    reference_form: str = "cleaned",
    dataset: str = "iu_xray",
    max_length: int | None = None,
) -> MetricReport:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of predictions against one reference each.

    Args:
        references: reference reports.
        predictions: generated reports, in the same order.
        reference_form: ``"cleaned"`` -- both sides cleaned with the R2Gen rules of
            ``dataset`` and references cut to ``max_length`` tokens (BOS and EOS
            included, default 60 for IU X-Ray / 100 for MIMIC-CXR), which is what the
            peers score against; or ``"raw"`` -- the strings as given (whitespace
            folded), for exact parity with a direct pycocoevalcap call.
        dataset: cleaning rules for ``"cleaned"``.
        max_length: reference truncation for ``"cleaned"``.

    Returns:
        A `MetricReport`; METEOR is None, with a note, when it cannot run.

    Raises:
        ValueError: for lists of different lengths, no reports, or an unknown form.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if reference_form not in ("cleaned", "raw"):
        raise ValueError(f"reference_form must be 'cleaned' or 'raw', got {reference_form!r}")
    references, predictions = _texts("references", references), _texts("predictions", predictions)
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        raise ValueError("no reports to score")
    settings = {"references": reference_form}
    if reference_form == "cleaned":
        limit = dataset_preset(dataset).max_length if max_length is None else int(max_length)
        settings.update(dataset=dataset, max_length=str(limit))
        references = [" ".join(clean_report(r, dataset).split()[: limit - 2]) for r in references]
        predictions = [clean_report(p, dataset) for p in predictions]
    gts = {i: [_one_line(r)] for i, r in enumerate(references)}
    res = {i: [_one_line(p)] for i, p in enumerate(predictions)}
    scores: dict[str, float | None] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores.update({f"BLEU_{n + 1}": float(b) for n, b in enumerate(bleu)})
    notes = []
    try:
        scores["METEOR"] = meteor_score(gts, res)[0]
    except RuntimeError as err:
        scores["METEOR"] = None
        notes.append(f"METEOR unavailable: {err}")
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return MetricReport({k: scores[k] for k in NLG_METRICS}, settings, notes)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-column ROC AUC of ``scores`` against binary ``labels``.

    Args:
        labels: ``(n,)`` or ``(n, k)`` of 0/1.
        scores: same shape, higher meaning more likely positive.

    Returns:
        ``(k,)`` float array (a 0-d array for 1-D input); NaN where a column has no
        positive or no negative example.

    Raises:
        ValueError: for mismatched shapes or labels other than 0 and 1.
    """
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must have the same shape")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    single = y.ndim == 1
    y, s = y.reshape(len(y), -1), s.reshape(len(s), -1)
    out = np.full(y.shape[1], np.nan)
    for column in range(y.shape[1]):
        positives = y[:, column] == 1
        n_pos, n_neg = int(positives.sum()), int((~positives).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = _average_ranks(s[:, column])
        out[column] = (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out[0] if single else out


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # rank of the last member of each group of ties
    return ((last - counts + 1 + last) / 2)[inverse]


def _labels_from(
    source: object, observations: Sequence[str], labeler: Callable[[Sequence[str]], np.ndarray] | None
) -> np.ndarray:
    """A label array from an array, a labeler CSV, or report texts (labelled here)."""
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        from cknet.data.labels import load_label_csv

        with open(source, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        missing = [o for o in observations if o not in header]
        if missing:
            raise ValueError(f"{os.fspath(source)} lacks the observation column(s) {missing}")
        id_column = next(c for c in header if c not in observations)
        return load_label_csv(source, observations, id_column)[2]
    if isinstance(source, np.ndarray):
        return source.astype(float)
    if isinstance(source, Sequence) and all(isinstance(r, str) for r in source):
        if labeler is None:
            from cknet.labeler import CheXpertLabeler

            labeler = CheXpertLabeler()
        return np.asarray(labeler(list(source)), dtype=float)
    raise ValueError(
        "labels must be an array, the path of a labeler's CSV output, or a list of report texts"
    )


# The CE variants papers report, by name: (averaging, observations; None = all 14).
TOP5 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
CE_VARIANTS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "micro-14": ("micro", None),
    "macro-14": ("macro", None),
    "micro-5": ("micro", TOP5),
    "example-14": ("example", None),
}


def ce_scores(
    reference: object,
    predicted: object,
    average: str = "micro",
    uncertain: int = 0,
    labeler: Callable[[Sequence[str]], np.ndarray] | None = None,
    observations: Sequence[str] | None = None,
    variant: str | None = None,
) -> MetricReport:
    """Clinical efficacy: accuracy, precision, recall, F1 and AUC of predicted findings.

    Args:
        reference: the reference labels: a ``(num_reports, num_observations)`` array of
            1 / 0 / -1 / NaN (as `CheXpertLabeler` returns), the path of a CSV file
            written by the CheXpert labeler or CheXbert (observation columns named as in
            CheXpert), or a list of report texts, labelled with ``labeler``.
        predicted: the generated reports' labels, in any of the same forms.
        average: ``"micro"`` (pool every report-observation cell), ``"macro"`` (mean over
            observations) or ``"example"`` (mean over reports; a report with no finding
            in either is a perfect match).
        uncertain: what -1 counts as, 0 (default) or 1. Blank (NaN) counts as 0.
        labeler: any callable from report texts to such an array (default
            `CheXpertLabeler`).
        observations: column names (default: the 14 CheXpert observations).
        variant: a named variant of `CE_VARIANTS`, setting the averaging and the
            observations scored (of the 14 CheXpert ones): ``"micro-14"``,
            ``"macro-14"``, ``"micro-5"`` (the "F1-5" of the top five: Atelectasis,
            Cardiomegaly, Consolidation, Edema, Pleural Effusion) or ``"example-14"``.

    Returns:
        A `MetricReport` whose scores are accuracy, precision, recall, F1, AUC (mean over
        observations where the reference has both classes; with binary predictions it
        is the balanced accuracy) and exact_match (reports with every column right); its
        table has one row per observation; its settings state averaging and policy.
        Precision, recall or F1 with a zero denominator count as 0.

    Raises:
        ValueError: for an unknown averaging, policy or variant, or label arrays that
            differ in shape.
    """
    from cknet.labeler import OBSERVATIONS, binarize

    subset = None
    if variant is not None:
        if variant not in CE_VARIANTS:
            raise ValueError(f"variant must be one of {sorted(CE_VARIANTS)}, got {variant!r}")
        if observations is not None:
            raise ValueError("a variant scores CheXpert's observations: give variant or observations")
        average, subset = CE_VARIANTS[variant]
    if average not in ("micro", "macro", "example"):
        raise ValueError(f"average must be 'micro', 'macro' or 'example', got {average!r}")
    names = list(observations) if observations is not None else list(OBSERVATIONS)
    ref = binarize(_labels_from(reference, names, labeler), uncertain).astype(bool)
    pred = binarize(_labels_from(predicted, names, labeler), uncertain).astype(bool)
    if subset is not None:
        columns = [names.index(o) for o in subset]
        ref, pred, names = ref[:, columns], pred[:, columns], list(subset)
    if ref.shape != pred.shape or ref.shape[1] != len(names):
        raise ValueError(
            f"reference labels {ref.shape} and predicted labels {pred.shape} must both be "
            f"(num_reports, {len(names)})"
        )
    tp, fp = (ref & pred).sum(0), (~ref & pred).sum(0)
    fn, tn = (ref & ~pred).sum(0), (~ref & ~pred).sum(0)
    auc = roc_auc(ref.astype(float), pred.astype(float))
    table = []
    for j, name in enumerate(names):
        p, r, f = _prf(tp[j], fp[j], fn[j])
        table.append(dict(observation=name, support=int(ref[:, j].sum()),
                          predicted=int(pred[:, j].sum()), precision=p, recall=r, f1=f,
                          accuracy=float((tp[j] + tn[j]) / len(ref)),
                          auc=None if np.isnan(auc[j]) else float(auc[j])))
    if average == "micro":
        precision, recall, f1 = _prf(tp.sum(), fp.sum(), fn.sum())
        accuracy = float((tp.sum() + tn.sum()) / ref.size)
    elif average == "macro":
        precision, recall, f1 = (float(np.mean([row[k] for row in table]))
                                 for k in ("precision", "recall", "f1"))
        accuracy = float(np.mean([row["accuracy"] for row in table]))
    else:
        per_report = []
        for i in range(len(ref)):
            a, b, c = (ref[i] & pred[i]).sum(), (~ref[i] & pred[i]).sum(), (ref[i] & ~pred[i]).sum()
            per_report.append((1.0, 1.0, 1.0) if a + b + c == 0 else _prf(a, b, c))
        precision, recall, f1 = (float(np.mean(v)) for v in zip(*per_report))
        accuracy = float(np.mean((ref == pred).mean(axis=1)))
    defined = auc[~np.isnan(auc)]
    scores = {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1,
              "auc": float(defined.mean()) if len(defined) else None,
              "exact_match": float((ref == pred).all(axis=1).mean())}
    settings = {"average": average, "uncertain": "positive (-1 -> 1)" if uncertain else "negative (-1 -> 0)",
                "blank": "-> 0", "observations": str(len(names)), "reports": str(len(ref))}
    if variant is not None:
        settings = {"variant": variant, **settings, "observation set": ", ".join(names)}
    return MetricReport(scores, settings, table=table)


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = float(tp / (tp + fp)) if tp + fp else 0.0
    recall = float(tp / (tp + fn)) if tp + fn else 0.0
    f1 = float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0
    return precision, recall, f1
