"""``cknet explain --model M STUDY --output fig.png``: a picture of where each word of a
study's report looked (`cknet.explain.explain`, `cknet.study_figure.draw_explanation`),
and the words with their most attended knowledge nodes, printed."""

from __future__ import annotations

import argparse
from pathlib import Path

from cknet.cli.arguments import check_output_file, input_paths, positive_int


def run(args: argparse.Namespace) -> int:
    from cknet.data.images import prepare_images
    from cknet.devices import resolve_device
    from cknet.explain import explain
    from cknet.model import CKNet
    from cknet.study_figure import PUNCTUATION, draw_explanation

    output = check_output_file(args.output, "--output", args.overwrite, (".png",),
                               input_paths(args.study, args.model))
    device = resolve_device(args.device)
    model = CKNet.from_pretrained(args.model, map_location=device).eval()
    views = args.study[0] if len(args.study) == 1 else list(args.study)
    images = prepare_images([views], model.config, args.repeat_single_view, names=[str(args.study[0])])
    explanation = explain(model, images, None if args.report is None else [args.report])[0]
    drawn = draw_explanation(explanation, images[0], model.config, output, max_words=args.words,
                             title=f"{args.study[0]}: where each word looked")
    from cknet.report_text import readable_report

    print(f"report: {readable_report(explanation.report)}")
    words = [w for w in explanation.words if w not in PUNCTUATION]
    shown = ", ".join(explanation.words[t] for t in drawn)
    more = (f"; the other {len(words) - len(drawn)} with --words {len(words)}" if len(words) > len(drawn)
            else "")
    print(f"drawn: the first {len(drawn)} of its {len(words)} words ({shown}){more}")
    if explanation.node_attention is not None:
        for t in drawn:
            node = int(explanation.node_attention[t].argmax())
            weight = float(explanation.node_attention[t, node])
            print(f"  {explanation.words[t]:<16} most attended knowledge node: "
                  f"{explanation.node_names[node]} ({weight:.2f})")
    print(f"figure: {output}")
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``cknet explain`` on the command line's sub-parsers.

    Args:
        commands: the ``add_subparsers()`` object of the ``cknet`` parser.
    """
    ex = commands.add_parser(
        "explain", help="a picture of where each word of a study's report looked",
        description="Write the model's report of one study (or explain a given one) and draw, word by "
                    "word, the decoder's attention over each view as a heat map and the knowledge nodes "
                    "the word drew on. Attention shows where the model looked, not why it wrote a word.",
    )
    ex.add_argument("study", nargs="+", type=Path,
                    help="a study folder, or its image files in view order (frontal first)")
    ex.add_argument("--model", required=True, type=Path, help="a saved CKNet folder")
    ex.add_argument("--output", required=True, type=Path, help="the PNG to write")
    ex.add_argument("--report", help="explain this report instead of the model's own")
    ex.add_argument("--words", type=positive_int, default=12,
                    help="the first this many words are drawn (punctuation skipped; default 12); the "
                         "printout says which")
    ex.add_argument("--repeat-single-view", action="store_true",
                    help="let a lone image fill every view of a multi-view model")
    ex.add_argument("--device", default=None)
    ex.add_argument("--overwrite", action="store_true")
    ex.set_defaults(handler=run)
