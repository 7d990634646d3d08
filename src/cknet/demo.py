"""`run_demo`: the whole method, end to end, on synthetic radiographs, in minutes on a CPU.

What `cknet demo` runs. No dataset and no download is needed:

1. render studies with known findings (`cknet.data.synthetic`): training, validation
   and test splits, and the test studies again as blank images (the control);
2. and 3., the training pipeline (`cknet.training.run_pipeline`, as ``cknet train``):
   pretrain the knowledge-graph stage (`KnowledgeGraphModel` on the 17-node
   `synthetic_graph`, Section III.A), then a small CKNet whose knowledge matrix is the
   frozen graph model's node embeddings of each study (``knowledge_source="image"``) and
   whose CNN is the graph stage's (``share_backbone``): each image passes one backbone
   once, its features are cached, and a CPU trains the rest in minutes;
4. write reports for the held-out studies and for their blank versions, score them
   (NLG metrics, and clinical efficacy with `SyntheticReports.read` as the labeler),
   print reference / generated pairs;
5. save the model (`CKNet.from_pretrained` loads it), a picture of a study with its
   report and the knowledge nodes it drew on most, and ``cknet-demo.json`` with every
   number.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cknet.devices import resolve_device
from cknet.persistence.folders import check_kind, save_folder
from cknet.study_figure import draw_study

if TYPE_CHECKING:
    from cknet.config import CKNetConfig
    from cknet.training import TrainingConfig

SUMMARY_FILE = "cknet-demo.json"
# what a demo folder holds: everything the demo writes, and the marker
DEMO_ENTRIES = {"model", "run", "base-run", "study.png", "samples", SUMMARY_FILE, "cknet.json"}
SAMPLE_STUDIES = 3  # held-out studies whose radiographs the demo keeps, to try generate on


@dataclass(frozen=True)
class DemoSettings:
    """Settings of a demo run: the CNN and the sizes.

    Attributes:
        backbone: the torchvision CNN of the graph stage, which the report model shares
            (``share_backbone``).
        image_size: side of the rendered views in pixels (one frontal view per study).
        train_studies: training split size.
        val_studies: validation split size.
        test_studies: test split size.
        graph_epochs: epochs of the knowledge-graph stage.
        epochs: epochs of CKNet training.
        d_model: CKNet's hidden size.
        d_knowledge: size of the knowledge vectors (node embeddings).
        layers: encoder and decoder layers (each).
        num_heads: attention and knowledge-query heads.
        gamma: γ, the knowledge vectors each query keeps.
        lr: Adam learning rate of CKNet.
        final_lr_factor: the learning rate decays per epoch to this fraction of ``lr``.
        length_grouping: ``TrainingConfig.length_grouping`` of CKNet training (0: off).
        eval_every: ``TrainingConfig.eval_every`` of CKNet training: validate (and keep the
            model with the lowest validation loss) every this many epochs and after the last.
        knowledge_dropout: ``CKNetConfig.knowledge_dropout`` of CKNet (0: the paper's).
    """

    backbone: str = "resnet18"
    image_size: int = 128
    train_studies: int = 2400
    val_studies: int = 200
    test_studies: int = 300
    graph_epochs: int = 4
    epochs: int = 20
    d_model: int = 128
    d_knowledge: int = 64
    layers: int = 2
    num_heads: int = 4
    gamma: int = 8
    lr: float = 1e-3
    final_lr_factor: float = 0.1
    length_grouping: int = 4
    eval_every: int = 5
    knowledge_dropout: float = 0.0

    def recipe(self, seed: int) -> TrainingConfig:
        """The demo's `TrainingConfig` for CKNet (and Base with ``--base``): these epochs
        and learning rate, features cached, the model with the lowest validation loss kept.

        Args:
            seed: the training's seed.
        """
        from cknet.training import TrainingConfig

        return TrainingConfig(
            epochs=self.epochs, batch_size=32, lr_rest=self.lr,
            lr_decay=self.final_lr_factor ** (1 / self.epochs), grad_clip=0.0, seed=seed,
            num_workers=0, eval_num_beams=1, eval_batch_size=64, cache_features=True,
            max_eval_studies=50, patience=self.epochs, select_by="loss",
            length_grouping=self.length_grouping, eval_every=self.eval_every,
        )

    def model_config(self) -> CKNetConfig:
        """The demo's `CKNetConfig`: IU X-Ray's preset with these sizes, one frontal view,
        no dropout, ``knowledge_source="image"`` and the graph stage's CNN shared."""
        from cknet.config import CKNetConfig

        return CKNetConfig.iu_xray(
            backbone=self.backbone, graph_backbone=self.backbone, image_size=self.image_size, num_views=1,
            d_model=self.d_model, d_ff=2 * self.d_model, num_heads=self.num_heads,
            num_encoder_layers=self.layers, num_decoder_layers=self.layers, d_knowledge=self.d_knowledge,
            gamma=self.gamma, dropout=0.0, knowledge_source="image", share_backbone=True,
            knowledge_dropout=self.knowledge_dropout)


FULL = DemoSettings()
QUICK = DemoSettings(image_size=96, train_studies=600, val_studies=100, test_studies=100,
                     graph_epochs=3, epochs=25, final_lr_factor=1.0)


@dataclass
class DemoResult:
    """What `run_demo` returns (also written to ``cknet-demo.json``).

    Attributes:
        ce: clinical efficacy of the test reports (micro average over the 17 findings).
        ce_blank: the same model fed blank images.
        nlg: BLEU-1..4, METEOR, ROUGE-L, CIDEr of the test reports.
        graph_auc: mean validation ROC AUC of the graph stage.
        examples: ``(reference, generated)`` pairs of the first test studies.
        model_dir: the saved model.
        figure: the picture of one test study.
        figure_nodes: the knowledge nodes that study's patches and tokens drew on most
            (see `draw_study`).
        seconds: wall time of each stage.
        base: with ``base=True``, Base (no knowledge matrix, the same frozen CNN, the same
            recipe) on the same studies: its ``ce``, ``ce_blank`` and ``nlg``; else None.
    """

    ce: dict[str, Any]
    ce_blank: dict[str, Any]
    nlg: dict[str, Any]
    graph_auc: float
    examples: list[tuple[str, str]]
    model_dir: Path
    figure: Path
    figure_nodes: dict[str, list[tuple[str, float]]]
    seconds: dict[str, float]
    base: dict[str, Any] | None = None

    @property
    def ce_margin(self) -> float:
        """CE F1 on the images minus CE F1 on blank images."""
        return float(self.ce["scores"]["f1"] - self.ce_blank["scores"]["f1"])


def run_demo(
    output_dir: str | Path = "cknet-demo",
    full: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    settings: DemoSettings | None = None,
    base: bool = False,
) -> DemoResult:
    """Render, pretrain the graph, train CKNet, evaluate, save; see the module docstring.

    Args:
        output_dir: where the model, the picture, the training run and
            ``cknet-demo.json`` go, written beside it and swapped in whole at the end. A
            folder written by an earlier demo is replaced; any other non-empty folder is
            refused.
        full: the larger settings (`FULL`: 128 px images, four times the studies)
            instead of `QUICK`, the default (see ``docs/demo.md`` for the times measured).
        seed: seeds the rendered studies and the training.
        device: default CUDA when available.
        progress: print the stages and show progress bars.
        settings: explicit sizes (overrides ``full``).
        base: also train Base (no knowledge matrix) on the same cached features with the
            same recipe, and report it beside CKNet, with its own blank-image control:
            what the knowledge path adds on these radiographs.

    Raises:
        FileExistsError: if ``output_dir`` is a non-empty folder that no demo wrote, or
            an earlier demo's folder holding files the demo did not write.
    """
    settings = settings or (FULL if full else QUICK)
    final = Path(output_dir)
    _check_output(final)
    device = resolve_device(device)
    outcome: list[DemoResult] = []
    # Everything is written into a fresh folder beside the old one, swapped in at the end
    # (`cknet.persistence.folders.save_folder`): a kill or an error leaves the previous demo whole.
    save_folder(final, "demo", lambda out: outcome.append(
        _run(out, final, settings, seed, device, progress, base)), overwrite=True)
    if progress:
        print(format_result(outcome[0]))
    return outcome[0]


def _run(out: Path, final: Path, settings: DemoSettings, seed: int, device: torch.device,
         progress: bool, base: bool = False) -> DemoResult:
    """The demo's four stages, written into ``out``; paths recorded as under ``final``."""
    from cknet.data.synthetic import FINDINGS, SyntheticDataset, synthetic_graph
    from cknet.model import CKNet
    from cknet.persistence.files import write_text_atomic
    from cknet.tokenizers import ReportTokenizer
    from cknet.training import GraphStage, StudySplits, run_pipeline

    say = print if progress else (lambda *args, **kwargs: None)
    clock = time.perf_counter()
    config = settings.model_config()
    # Drawn once, kept: the graph stage reads them every epoch, the feature cache once more.
    train = SyntheticDataset(settings.train_studies, config, seed=3 * seed, keep_rendered=True)
    val = SyntheticDataset(settings.val_studies, config, seed=3 * seed + 1, keep_rendered=True)
    test = SyntheticDataset(settings.test_studies, config, seed=3 * seed + 2, keep_rendered=True)
    blank = SyntheticDataset(settings.test_studies, config, seed=3 * seed + 2, blank=True)
    say(f"[1/4] Synthetic radiographs: {len(train)} training, {len(val)} validation, {len(test)} test "
        f"studies at {settings.image_size} px, {len(FINDINGS)} findings (drawn when first read)")

    # The report model reads each study's nodes (knowledge_source="image"): no static matrix.
    stage = GraphStage(backbone=settings.backbone, d_knowledge=settings.d_knowledge,
                       epochs=settings.graph_epochs, batch_size=32, lr=1e-3, static_knowledge=False)
    recipe = settings.recipe(seed)
    say(f"[2/4] Knowledge-graph stage ({settings.backbone} + GCN, {settings.graph_epochs} epochs), then "
        f"[3/4] CKNet (d_model {settings.d_model}, {settings.layers}+{settings.layers} layers, top-"
        f"{settings.gamma} knowledge query, {settings.epochs} epochs on cached features)")
    # The report model's CNN is the graph stage's (share_backbone), frozen: one backbone
    # pass per image feeds v_s and G, computed once into the feature cache.
    tokenizer = ReportTokenizer.from_reports(train.reports())
    run = run_pipeline(out / "run", StudySplits(train, val), recipe, config, tokenizer, synthetic_graph(),
                       graph_model=stage, device=str(device), progress=progress)
    seconds = dict(run.seconds)
    best = CKNet.from_pretrained(out / "run" / "best", map_location=device)

    say("[4/4] Reports for the held-out studies, and for the same studies as blank images")
    start = time.perf_counter()
    references = [test.report(i) for i in range(len(test))]
    generated, scores = _scores(best, test, blank, references, progress)
    ce, ce_blank, nlg = scores["ce"], scores["ce_blank"], scores["nlg"]
    seconds["evaluation"] = time.perf_counter() - start
    base_scores = None
    if base:
        start = time.perf_counter()
        say("[+] Base: no knowledge matrix, the same frozen CNN and recipe")
        base_model = _train_base(best, run.graph_model, tokenizer, train, val, recipe, out / "base-run",
                                 device, progress)
        _, base_scores = _scores(base_model, test, blank, references, progress)
        seconds["base"] = time.perf_counter() - start

    nodes = _save_model(best, out, f"{len(train)} synthetic studies (cknet.data.synthetic, seed {3 * seed})",
                        test, generated, references, ce, ce_blank, nlg)
    seconds["total"] = time.perf_counter() - clock
    result = DemoResult(ce, ce_blank, nlg, run.graph_stage.best.mean_auc,
                        list(zip(references, generated))[:4], final / "model", final / "study.png", nodes,
                        seconds, base_scores)
    summary = {**dataclasses.asdict(result), "model_dir": str(result.model_dir),
               "figure": str(result.figure), "settings": dataclasses.asdict(settings), "seed": seed,
               "device": str(device)}
    write_text_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    return result


def _save_model(model, out: Path, training_data: str, test, generated: list[str], references: list[str],
                ce: dict, ce_blank: dict, nlg: dict) -> dict[str, list[tuple[str, float]]]:
    """Save the kept model with its scores and ``synthetic: true`` (``out/model``), a few
    held-out studies' images (``out/samples``) and the picture of the first test study
    (``out/study.png``); returns the nodes the picture shows."""
    model.save_pretrained(out / "model", training_info={
        "training data": training_data,
        "metrics": {"test CE micro F1": ce["scores"]["f1"],
                    "blank-image CE micro F1": ce_blank["scores"]["f1"],
                    **{name: value for name, value in nlg["scores"].items() if value is not None}},
        "evaluation": f"{len(test)} held-out synthetic studies, beam 3",
        "synthetic": True,
    })
    _save_samples(test, out / "samples")
    return draw_study(model, test[0]["images"], generated[0], references[0], out / "study.png",
                      study_id=test[0]["id"])


def _train_base(cknet_model, graph_model, tokenizer, train, val, recipe, run_dir: Path, device: torch.device,
                progress: bool):
    """Base beside the demo's CKNet: ``knowledge_source="none"``, the graph stage's CNN
    (frozen: its maps cached, as CKNet's), the same recipe and studies; the kept model."""
    from cknet.config import CKNetConfig
    from cknet.model import CKNet
    from cknet.training import Trainer

    config = CKNetConfig.from_dict({**cknet_model.config.to_dict(), "knowledge_source": "none",
                                    "share_backbone": False})
    model = CKNet(config, tokenizer, graph=cknet_model.graph)
    model.visual_extractor.backbone.load_state_dict(graph_model.backbone.state_dict())
    Trainer(model, recipe, train, val, run_dir, device=str(device), progress=progress).fit()
    return CKNet.from_pretrained(run_dir / "best", map_location=device)


def _scores(model, test, blank, references: list[str], progress: bool) -> tuple[list[str], dict[str, Any]]:
    """A model's reports of the held-out studies, and their CE and NLG, with its CE on
    the same studies as blank images (``ce``, ``ce_blank``, ``nlg``)."""
    generated, ce, nlg = _held_out_scores(model, test, references, progress)
    _, ce_blank, _ = _held_out_scores(model, blank, references, progress, full=False)
    return generated, {"ce": ce, "ce_blank": ce_blank, "nlg": nlg}


def _save_samples(studies, folder: Path) -> None:
    """The first held-out studies as study folders of PNG views (``ID/0.png``) with their
    reference report (``ID/report.txt``): what `CKNet.generate` and ``cknet generate`` take."""
    from PIL import Image

    for index in range(min(SAMPLE_STUDIES, len(studies))):
        study = folder / studies.study_id(index)
        study.mkdir(parents=True, exist_ok=True)
        for view, pixels in enumerate(studies.render(index)):
            Image.fromarray((pixels * 255).round().astype("uint8"), mode="L").save(study / f"{view}.png")
        (study / "report.txt").write_text(studies.report(index) + "\n", encoding="utf-8")


def _held_out_scores(model, studies, references: list[str], progress: bool,
                     full: bool = True) -> tuple[list[str], dict, dict]:
    """Beam-3 reports for synthetic studies, and their CE (read by the renderer's inverse)
    and NLG scores against ``references``."""
    from cknet.data.synthetic import FINDINGS, SyntheticReports
    from cknet.evaluation import score_reports

    images = torch.stack([studies[i]["images"] for i in range(len(studies))])
    generated = model.generate(images, batch_size=64, progress=progress)  # its generation_config: beam 3
    config = model.config
    scored = score_reports(references, generated, config.dataset, config.max_length, full=full,
                           labeler=SyntheticReports.read, observations=FINDINGS)
    return generated, scored.ce, scored.nlg


def _base_lines(result: DemoResult) -> list[str]:
    """The printout's Base lines, when Base was trained beside CKNet."""
    if result.base is None:
        return []
    f1, blank = result.base["ce"]["scores"]["f1"], result.base["ce_blank"]["scores"]["f1"]
    bleu = result.base["nlg"]["scores"].get("BLEU_4")
    return [f"Base (no knowledge matrix): CE F1 {f1:.3f}, with blank images {blank:.3f} "
            f"(margin {f1 - blank:+.3f})" + (f", BLEU_4 {bleu:.3f}" if bleu is not None else ""),
            f"What the knowledge path adds: CE F1 {result.ce['scores']['f1'] - f1:+.3f} (CKNet - Base)"]


def _check_output(out: Path) -> None:
    """Refuse a file, a folder that is not a demo's, and a demo folder holding files the
    demo did not write (they would be lost when it is replaced), before any work."""
    kind = check_kind(out, "demo", writing=True)  # a file, another kind, or someone else's folder
    if kind is not None:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES)
        if foreign:
            raise FileExistsError(f"{out} is an earlier demo's folder but also holds {foreign[:5]}, which "
                                  f"the demo did not write: move them, or give --output another path")
    parent = out.resolve().parent
    try:  # the demo is written beside its folder, then swapped in: the parent must take new folders
        parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryDirectory(dir=parent).cleanup()
    except OSError as err:
        raise OSError(f"cannot write the demo to {out}: its folder {parent} does not take new folders "
                      f"({err.strerror or err}); give --output a folder on a writable disk") from None


def format_result(result: DemoResult, width: int = 100) -> str:
    """The printed summary: reference / generated pairs side by side, then the metrics.

    Args:
        result: what `run_demo` returned.
        width: characters per line.

    Returns:
        The text.
    """
    column = (width - 3) // 2
    lines = ["", f"{'REFERENCE':<{column}} | GENERATED", "-" * width]
    for reference, generated in result.examples:
        left, right = textwrap.wrap(reference, column) or [""], textwrap.wrap(generated, column) or [""]
        lines += [f"{a:<{column}} | {b}" for a, b in itertools.zip_longest(left, right, fillvalue="")]
        lines.append("-" * width)
    nlg = "  ".join(f"{k} {v:.3f}" for k, v in result.nlg["scores"].items() if v is not None)
    ce, blank = result.ce["scores"], result.ce_blank["scores"]
    lines += [
        f"NLG: {nlg}",
        f"CE (micro, 17 findings): precision {ce['precision']:.3f} recall {ce['recall']:.3f} "
        f"F1 {ce['f1']:.3f}",
        f"CE F1 with blank images: {blank['f1']:.3f} (margin {result.ce_margin:+.3f})",
        *_base_lines(result),
        f"Knowledge-graph stage: validation mean AUC {result.graph_auc:.3f}",
        "Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items()),
        f"Model: {result.model_dir} (CKNet.from_pretrained loads it); picture: {result.figure}",
        f"Samples: {Path(result.model_dir).parent / 'samples'} ({SAMPLE_STUDIES} held-out studies; try "
        f"cknet generate --model {result.model_dir} {Path(result.model_dir).parent / 'samples'}/*)",
    ]
    return "\n".join(lines)
