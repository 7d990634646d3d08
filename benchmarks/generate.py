"""Benchmark report generation: image encoding vs decoding, beam 3 vs greedy, cost per token.

The IU X-Ray configuration of the paper (two 224 px views, DenseNet-121 or ResNet-101,
d_model 512, 3 + 3 layers, the IU vocabulary) with random weights and a batch of 16
studies. A random model rarely emits <eos>, so "natural" decoding runs to the length
limit (59 tokens), the worst case; the forced-length rows pin the length with
min_new_tokens = max_new_tokens.

    python benchmarks/generate.py [--backbone densenet121] [--knowledge-source image]
                                  [--text-encoder embedding] [--threads 2] [--repeats 3]

With ``knowledge_source="image"`` (the default) image encoding includes the frozen
graph model's own backbone; ``"static"`` has none.

``--text-encoder bert-base`` takes v_t from a randomly initialised language model of
BioClinicalBERT's shape (BERT-base: 12 layers, hidden 768, 28,996-token vocabulary;
built offline, whole IU words as its vocabulary plus filler tokens); a folder path
loads that model (e.g. a local copy of emilyalsentzer/Bio_ClinicalBERT). The
per-step rows time single decoding steps early and late in a forced-length beam
search: with a key/value cache they should cost the same.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import PeakMemory, describe
from shared_data import IU_XRAY

import cknet
from cknet.generation import GenerationConfig, run_search

IU_ANNOTATION = IU_XRAY / "annotation.json"


def tokenizer() -> cknet.ReportTokenizer:
    if IU_ANNOTATION.is_file():
        return cknet.ReportTokenizer.from_annotation(IU_ANNOTATION)
    return cknet.ReportTokenizer([f"word{i}" for i in range(759)])  # the IU vocabulary's size


def bert_base_folder(directory: Path) -> Path:
    """A random BERT-base (BioClinicalBERT's architecture and vocabulary size) saved in
    ``directory`` with a WordPiece tokenizer whose vocabulary holds the IU words."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from cknet.testing import BERT_SPECIAL_TOKENS

    words = tokenizer().words
    fillers = [f"filler{i}" for i in range(28996 - len(BERT_SPECIAL_TOKENS) - len(words))]
    (directory / "vocab.txt").write_text("\n".join([*BERT_SPECIAL_TOKENS, *words, *fillers]) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
    BertModel(BertConfig(vocab_size=28996)).save_pretrained(directory)
    return directory


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls after one warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="densenet121")
    parser.add_argument("--knowledge-source", default="image", choices=["image", "static", "random", "none"])
    parser.add_argument("--text-encoder", default="embedding",
                        help="embedding, bert-base (random, BioClinicalBERT-shaped) or a model folder")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]

    scratch = tempfile.TemporaryDirectory()
    text_encoder = args.text_encoder
    if text_encoder == "bert-base":
        text_encoder = str(bert_base_folder(Path(scratch.name)))
    config = cknet.CKNetConfig.iu_xray(backbone=args.backbone, knowledge_source=args.knowledge_source,
                                       text_encoder=text_encoder)
    if config.pretrained_text_encoder:
        report_tokenizer = cknet.PretrainedReportTokenizer.from_pretrained(text_encoder)
    else:
        report_tokenizer = tokenizer()
    model = cknet.CKNet(config, report_tokenizer).to(args.device, dtype).eval()
    images = torch.randn(args.batch, 2, 3, 224, 224, device=args.device, dtype=dtype)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    peaks: list[float] = []

    def run(fn):
        def call():
            with torch.inference_mode():
                out = fn()
            sync()
            return out
        with PeakMemory(args.device) as peak:
            result = timed(call, args.repeats)
        peaks.append(peak.gigabytes)
        return result

    encode_s, encoding = run(lambda: model.encode(images))
    rows = [("image encoding (backbone, graph, encoder)", encode_s, None, peaks[-1])]

    def decode(options: GenerationConfig):
        resolved = options.resolve(config.max_length)
        seconds, found = run(lambda: run_search(model, encoding, args.batch, model.tokenizer, resolved))
        return seconds, found.tokens.shape[-1] - 1

    natural = {}
    for beams in (3, 1):
        seconds, steps = decode(GenerationConfig(num_beams=beams))
        natural[beams] = seconds
        name = f"decoding, beam {beams}" if beams > 1 else "decoding, greedy"
        rows.append((name, seconds, steps, peaks[-1]))
    forced = {}
    for length in (30, 60, 120):
        seconds, steps = decode(GenerationConfig(max_new_tokens=length, min_new_tokens=length, num_beams=3))
        forced[length] = seconds
        rows.append((f"decoding, beam 3, forced length {length}", seconds, steps, peaks[-1]))

    step_seconds: list[float] = []
    decode_step = model.decode

    def timed_step(*inputs, **options):
        start = time.perf_counter()
        out = decode_step(*inputs, **options)
        sync()
        step_seconds.append(time.perf_counter() - start)
        return out

    model.decode = timed_step  # time each call of the decoder (text encoder included)
    length = config.max_length - 1
    forced_full = GenerationConfig(max_new_tokens=length, min_new_tokens=length, num_beams=3).resolve(
        config.max_length)
    for _ in range(args.repeats):
        with torch.inference_mode():
            run_search(model, encoding, args.batch, model.tokenizer, forced_full)
    del model.decode
    steps_by_position = torch.tensor(step_seconds).view(args.repeats, length).median(dim=0).values
    early, late = steps_by_position[1:11].median().item(), steps_by_position[-10:].median().item()
    rows.append((f"one beam-3 step, prefix 2-11 (of {length})", early, None, None))
    rows.append((f"one beam-3 step, prefix {length - 9}-{length}", late, None, None))

    print(f"cknet {cknet.__version__} generate benchmark: {args.backbone}, knowledge "
          f"{args.knowledge_source}, text encoder {args.text_encoder}, batch {args.batch}, {args.dtype}; "
          f"{describe(args.device)}")
    memory = PeakMemory(args.device).what + ", GB"
    print(f"| {'stage':<44} | {'seconds':>8} | {'tokens':>6} | {'ms/token':>8} | {memory} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 8}|{'-' * 10}|{'-' * (len(memory) + 2)}|")
    for name, seconds, steps, peak in rows:
        per_token = f"{1000 * seconds / steps:8.1f}" if steps else f"{'':8}"
        peak_text = f"{peak:.2f}" if peak is not None else ""
        print(f"| {name:<44} | {seconds:8.3f} | {steps if steps else '':>6} | {per_token} | "
              f"{peak_text:>{len(memory)}} |")
    print()
    for beams, label in ((3, "beam 3"), (1, "greedy")):
        total = encode_s + natural[beams]
        print(f"{label}: {total:.2f} s per batch of {args.batch}, {args.batch / total:.1f} studies/s, "
              f"image encoding {100 * encode_s / total:.0f}% of the total")
    print(f"forced length 120 / 60 time ratio at beam 3: {forced[120] / forced[60]:.2f}")
    print(f"late / early step time ratio at beam 3: {late / early:.2f}")
    if args.json:
        args.json.write_text(json.dumps(
            [{"stage": n, "seconds": s, "tokens": t, "peak_gb": m} for n, s, t, m in rows], indent=1) + "\n")


if __name__ == "__main__":
    main()
