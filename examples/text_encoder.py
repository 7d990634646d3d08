"""Text features from a pretrained language model (the paper's BioClinicalBERT), offline.

``--text-encoder DIR`` uses the language model in DIR, e.g. a local copy of
BioClinicalBERT made on a machine with internet access:

    hf download emilyalsentzer/Bio_ClinicalBERT --local-dir /models/Bio_ClinicalBERT

Without it, the example writes a tiny BERT with random weights and a WordPiece
vocabulary trained on the reports (`cknet.testing.make_tiny_bert`), laid out like that
folder, so the same code runs offline on a CPU. It fits a small CKNet to
a few synthetic studies, shows how a report is split into word pieces, generates
reports (pieces merged back into words), then saves the model and reloads it from its
folder alone.

    python examples/text_encoder.py [--text-encoder DIR] [--output runs/text-encoder] [--steps 60]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import cknet
from cknet.data.synthetic import SyntheticDataset
from cknet.report_text import readable_report
from cknet.testing import make_tiny_bert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-encoder", type=Path, help="a language model folder (default: a tiny BERT)")
    parser.add_argument("--output", type=Path, help="where to save the model (default: a temporary folder)")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    scratch = tempfile.TemporaryDirectory()
    output = args.output or Path(scratch.name) / "model"

    config = cknet.CKNetConfig.iu_xray(
        backbone="resnet18", image_size=96, num_views=1, d_model=128, d_ff=256, num_heads=4,
        num_encoder_layers=2, num_decoder_layers=2, knowledge_source="random", d_knowledge=64,
        dropout=0.0,
    )
    studies = SyntheticDataset(6, config, seed=0)
    reports = [studies.report(i) for i in range(len(studies))]
    language_model = args.text_encoder
    if language_model is None:
        corpus = [SyntheticDataset(400, config, seed=1).report(i) for i in range(400)]
        language_model = make_tiny_bert(corpus, Path(scratch.name) / "tiny-bert", vocab_size=300)
        print(f"Tiny random BERT (a stand-in for BioClinicalBERT) written to {language_model}")

    config = cknet.CKNetConfig.from_dict({**config.to_dict(), "text_encoder": str(language_model)})
    tokenizer = cknet.PretrainedReportTokenizer.from_pretrained(language_model, max_length=config.max_length)
    model = cknet.CKNet(config, tokenizer)
    frozen = sum(p.numel() for p in list(model.text_encoder.language_model.parameters()))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"CKNet: {trainable / 1e6:.1f}M trainable parameters, language model frozen "
          f"({frozen / 1e6:.2f}M parameters, vocabulary {tokenizer.vocab_size})")

    ids = tokenizer.encode(reports[0])
    pieces = tokenizer.tokenizer.convert_ids_to_tokens(ids)
    print(f"A report as {len(ids)} tokens: {' '.join(pieces[:16])} ...")

    images = torch.stack([studies[i]["images"] for i in range(len(studies))])
    input_ids, _ = tokenizer.encode_batch(reports)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for step in range(1, args.steps + 1):
        loss = model(images, input_ids, labels=input_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step % 20 == 0:
            print(f"step {step:3d}  loss {loss.item():.3f}")

    generated = model.eval().generate(images[:2])
    for reference, report in zip(reports, generated):
        print(f"reference: {readable_report(tokenizer.clean(reference))}\ngenerated: {report}")

    model.save_pretrained(output, overwrite=True)
    reloaded = cknet.CKNet.from_pretrained(output)
    same = reloaded.generate(images[:2]) == generated
    print(f"Saved to {output} (text_encoder/ holds the tokenizer and architecture); "
          f"reloaded from that folder alone: {'same reports' if same else 'DIFFERENT reports'}")


if __name__ == "__main__":
    main()
