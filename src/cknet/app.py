"""`cknet app`: a page to try a model, for radiologists and collaborators who judge a
model by looking.

Drop one study's views (PNG, JPEG or DICOM), read the report, the picture of where each
word looked, and the model's warnings (trained on synthetic radiographs, the views and
image size it expects); download the report as JSON. The page is Gradio's (``pip
install "cknet[app]"``), served on this machine only (``127.0.0.1``) unless told
otherwise, and works offline. The handlers (`ReportApp`) are plain Python, usable and
tested without Gradio or a browser.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image


@dataclass
class AppResult:
    """What the page shows for one study.

    Attributes:
        report: the generated report, readable.
        figure: the picture of where each word looked (`cknet.study_figure.draw_explanation`).
        warnings: the model's warnings, one sentence each.
        record: what the JSON download holds (report, images, model, warnings).
    """

    report: str
    figure: Image.Image
    warnings: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


class ReportApp:
    """The page's handlers around one saved model.

    Args:
        model_dir: a folder written by `CKNet.save_pretrained` (or the demo's model).
        device: where the model runs (default: CUDA when available).
        words: words drawn in the figure.
    """

    def __init__(self, model_dir: str | os.PathLike[str], device: str | None = None, words: int = 12) -> None:
        import warnings

        from cknet.devices import resolve_device
        from cknet.model import CKNet

        self.model_dir = Path(model_dir)
        with warnings.catch_warnings():  # the page states the warning itself (model_warnings)
            warnings.simplefilter("ignore")
            self.model = CKNet.from_pretrained(self.model_dir, map_location=resolve_device(device))
        self.words = words

    def model_warnings(self) -> list[str]:
        """What a reader of the model's reports must know, from its card's facts."""
        config, info = self.model.config, self.model.training_info
        views = "one frontal view" if config.num_views == 1 else f"{config.num_views} views (frontal first)"
        notes = []
        if info.get("synthetic"):
            notes.append("This model was trained on synthetic radiographs only (cknet demo): its reports of "
                         "real images mean nothing.")
        if not info:
            notes.append("The model's folder says nothing of its training data.")
        notes.append(f"It reads {views} per study at {config.image_size} x {config.image_size} pixels; "
                     f"other sizes are resized.")
        notes.append("Research software, not a medical device.")
        return notes

    def analyse(self, paths: list[str | os.PathLike[str]]) -> AppResult:
        """Write and explain the report of one study.

        Args:
            paths: the study's image files in view order (frontal first); a one-view
                model takes one, a two-view model two (or one, repeated, with a warning).

        Returns:
            The report, its figure, the warnings and the JSON record.

        Raises:
            ValueError: for no file, too many, or a file that is not a readable image
                (the message names it and says what is expected).
        """
        from cknet.data.images import prepare_images
        from cknet.report_text import readable_report
        from cknet.study_figure import draw_explanation

        files = [Path(p) for p in paths or []]
        views = self.model.config.num_views
        if not files:
            raise ValueError(f"drop the study's images: {views} view(s), PNG, JPEG or DICOM")
        if len(files) > views:
            raise ValueError(f"this model reads {views} view(s) per study; {len(files)} files were given "
                             f"({', '.join(f.name for f in files)})")
        notes = self.model_warnings()
        repeat = len(files) < views
        if repeat:
            notes.insert(0, f"One image for a {views}-view model: it fills every view, so the report is "
                            f"weaker than with all views.")
        images = prepare_images([files], self.model.config, repeat_single_view=repeat,
                                names=[files[0].name]).to(self.model.device)
        explanation = self.model.explain(images)[0]
        with tempfile.TemporaryDirectory() as folder:
            picture = Path(folder) / "words.png"
            draw_explanation(explanation, images[0], self.model.config, picture, max_words=self.words,
                             title="Where each word looked")
            with Image.open(picture) as drawn:
                figure = drawn.convert("RGB")
        report = readable_report(explanation.report)
        record = {"report": report, "images": [f.name for f in files], "model": str(self.model_dir),
                  "warnings": notes}
        return AppResult(report, figure, notes, record)

    def download(self, result: AppResult, folder: str | os.PathLike[str]) -> Path:
        """Write ``result``'s record as ``report.json`` in ``folder`` (the page's download).

        Args:
            result: what `analyse` returned.
            folder: where to write.

        Returns:
            The file.
        """
        path = Path(folder) / "report.json"
        path.write_text(json.dumps(result.record, indent=1) + "\n", encoding="utf-8")
        return path


def build_page(app: ReportApp, example: list[str | os.PathLike[str]] | None = None) -> Any:
    """The Gradio page (Blocks) around `ReportApp`'s handlers.

    Args:
        app: the handlers.
        example: a study's image files shown analysed when the page opens.

    Raises:
        ImportError: without Gradio, naming the extra that brings it.
    """
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError('cknet app needs Gradio: pip install "cknet[app]"') from err
    downloads = tempfile.mkdtemp(prefix="cknet-app-")

    def run(files):
        try:
            result = app.analyse([getattr(f, "name", f) for f in files or []])
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return result.report, result.figure, "\n".join(f"- {w}" for w in result.warnings), \
            str(app.download(result, tempfile.mkdtemp(dir=downloads)))

    # an example is analysed once, here, and shown as the components' first values
    shown = run([str(p) for p in example]) if example else (None, None, None, None)
    with gr.Blocks(title="cknet: try a model") as page:
        gr.Markdown(f"## cknet: try a model\n`{app.model_dir}`\n\n"
                    + "\n".join(f"- {w}" for w in app.model_warnings()))
        with gr.Row():
            with gr.Column():
                files = gr.File(label="The study's views (frontal first): PNG, JPEG or DICOM",
                                file_count="multiple", type="filepath")
                button = gr.Button("Write the report", variant="primary")
            with gr.Column():
                report = gr.Textbox(label="Report", lines=6, value=shown[0])
                notes = gr.Markdown(value=shown[2])
                download = gr.File(label="The report as JSON", value=shown[3])
        figure = gr.Image(label="Where each word looked", type="pil", value=shown[1])
        button.click(run, inputs=files, outputs=[report, figure, notes, download])
    return page


def serve(model_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 7860,
          device: str | None = None, example: list[str | os.PathLike[str]] | None = None,
          block: bool = True) -> Any:
    """Serve the page (this machine only, by default), until interrupted when ``block``.

    Args:
        model_dir: the model's folder.
        host: the address to listen on (``0.0.0.0`` shares it on the network).
        port: the port.
        device: where the model runs.
        example: a study's image files shown analysed when the page opens.
        block: wait until interrupted; False returns the running page (close it with
            ``page.close()``).

    Returns:
        The Gradio page.
    """
    page = build_page(ReportApp(model_dir, device), example)
    page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block)
    return page
