"""Readable reports: the words of the tokenised form, for people, scoring the same."""

import pytest
import torch
from conftest import small_config

from cknet import CKNet
from cknet.report_text import readable_report
from cknet.tokenizers.base import clean_report


@pytest.mark.parametrize("tokenized, readable, trimmed", [
    ("the heart is normal in size . no pleural effusion .",
     "The heart is normal in size. No pleural effusion.", None),
    ("no effusion , no edema ; lungs clear : yes .", "No effusion, no edema; lungs clear: yes.", None),
    ("heart size normal . there is a", "Heart size normal. There is a…", "Heart size normal."),
    ("there is a small", "There is a small…", "There is a small…"),  # nothing to trim back to
    ("xxxx ( ap ) view . 50 % .", "Xxxx (ap) view. 50%.", None),
    ("", "", ""),
])
def test_sentences_are_capitalised_punctuation_attached_and_a_cut_sentence_marked_or_trimmed(
        tokenized, readable, trimmed):
    assert readable_report(tokenized) == readable
    assert readable_report(tokenized, trim_incomplete=True) == (readable if trimmed is None else trimmed)


def test_every_iu_reference_reads_back_to_its_tokenised_form(iu_annotation):
    """On the 2,955 real IU X-Ray reports: the metrics' cleaning of the readable form is
    the tokenised form, word for word, so readable output scores as the tokenised does."""
    reports = [e["report"] for split in iu_annotation.values() for e in split]
    tokenized = [clean_report(r, "iu_xray") for r in reports]
    assert len(tokenized) > 2900
    mismatched = [t for t in tokenized if clean_report(readable_report(t), "iu_xray") != t]
    assert mismatched == []
    assert all(readable_report(t)[:1].isupper() or not t[:1].isalpha() for t in tokenized)


def test_generate_returns_readable_text_unless_asked_for_the_tokenised_form(iu_tokenizer):
    torch.manual_seed(0)
    model = CKNet(small_config(), iu_tokenizer).eval()
    images = torch.randn(2, 2, 3, 64, 64)
    reports = model.generate(images, num_beams=2, max_new_tokens=8, return_scores=True)
    tokenized = model.generate(images, num_beams=2, max_new_tokens=8, readable=False)
    for (report,), plain in zip(reports, tokenized):
        assert report.tokenized == plain == iu_tokenizer.decode([iu_tokenizer.bos_id, *report.token_ids])
        assert report.text == readable_report(plain)
    trimmed = model.generate(images, num_beams=2, max_new_tokens=8, trim_incomplete=True)
    assert trimmed == [readable_report(t, trim_incomplete=True) for t in tokenized]
