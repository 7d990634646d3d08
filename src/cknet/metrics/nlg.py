"""Natural-language generation (NLG) metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr.

`nlg_scores` gives them through pycocoevalcap, the numbers a direct call of its scorers
gives on the same strings (as the R2Gen family calls them: one reference per report,
no PTB tokenizer). METEOR runs the same Java jar with the same protocol, but writes all
input at once and reads all output with a time limit, so it can neither deadlock nor
die of a broken pipe; without Java it is reported unavailable with a one-line reason
and the other metrics are still computed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from cknet.config import dataset_preset
from cknet.metrics.report import MetricReport
from cknet.tokenizers.base import clean_report

NLG_METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")

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

    references, predictions, _ = prepare_texts(references, predictions, "cleaned", dataset, max_length)
    gts = {i: [r] for i, r in enumerate(references)}
    res = {i: [p] for i, p in enumerate(predictions)}
    return float(Bleu(4).compute_score(gts, res, verbose=0)[0][3])


def prepare_texts(
    references: Sequence[str],
    predictions: Sequence[str],
    reference_form: str = "cleaned",
    dataset: str = "iu_xray",
    max_length: int | None = None,
) -> tuple[list[str], list[str], dict[str, str]]:
    """The texts as `nlg_scores` scores them, on one line each, and the settings used.

    Args:
        references: reference reports.
        predictions: generated reports, in the same order.
        reference_form: ``"cleaned"`` or ``"raw"`` (see `nlg_scores`).
        dataset: cleaning rules for ``"cleaned"``.
        max_length: reference truncation for ``"cleaned"``.

    Returns:
        The references, the predictions, and the settings (form, dataset, length).

    Raises:
        ValueError: for lists of different lengths, no reports, or an unknown form.
    """
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
        # R2Gen: ids = [0] + words + [0], cut to max_length, decoded from position 1 up to
        # the first 0: the first max_length - 1 words (59 for IU X-Ray, 99 for MIMIC-CXR)
        references = [" ".join(clean_report(r, dataset).split()[: limit - 1]) for r in references]
        predictions = [clean_report(p, dataset) for p in predictions]
    return [_one_line(r) for r in references], [_one_line(p) for p in predictions], settings


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
            ``dataset`` and references cut as R2Gen's dataset and ``decode_batch`` cut
            them: ``max_length`` ids with BOS (default 60 for IU X-Ray / 100 for
            MIMIC-CXR), so the first ``max_length - 1`` words, which is what the peers
            score against; or ``"raw"`` -- the strings as given (whitespace
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

    references, predictions, settings = prepare_texts(references, predictions, reference_form, dataset,
                                                      max_length)
    gts = {i: [r] for i, r in enumerate(references)}
    res = {i: [p] for i, p in enumerate(predictions)}
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
