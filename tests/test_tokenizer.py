import re
from collections import Counter

import pytest
import torch

from cknet import ReportTokenizer
from cknet.tokenizers import clean_report


def r2gen_clean_iu_xray(report: str) -> str:
    """R2Gen's IU X-Ray cleaning, transcribed statement by statement (the reference)."""
    sentences = (report.replace("..", ".").replace("..", ".").replace("..", ".")
                 .replace("1. ", "").replace(". 2. ", ". ").replace(". 3. ", ". ")
                 .replace(". 4. ", ". ").replace(". 5. ", ". ").replace(" 2. ", ". ")
                 .replace(" 3. ", ". ").replace(" 4. ", ". ").replace(" 5. ", ". ")
                 .strip().lower().split(". "))

    def sent_cleaner(t):
        t = t.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip().lower()
        return re.sub(r"[.,?;*!%^&_+():-\[\]{}]", "", t)

    return " . ".join(sent_cleaner(s) for s in sentences) + " ."


def test_vocabulary_matches_r2gen_on_iu_xray(iu_annotation, iu_tokenizer):
    counts = Counter(w for e in iu_annotation["train"] for w in r2gen_clean_iu_xray(e["report"]).split())
    r2gen_words = sorted(w for w, c in counts.items() if c >= 3)
    assert len(r2gen_words) == 759
    assert iu_tokenizer.words == r2gen_words
    assert iu_tokenizer.vocab_size == 759 + 4  # + <pad>, <bos>, <eos>, <unk>


def drop_empty_sentences(tokens: list[str]) -> list[str]:
    """R2Gen keeps empty sentences as repeated "." tokens; we drop them."""
    kept = [t for i, t in enumerate(tokens) if not (t == "." and (i == 0 or tokens[i - 1] == "."))]
    return kept


def test_cleaning_agrees_with_r2gen_up_to_empty_sentences(iu_annotation):
    differing = 0
    for split in ("train", "val", "test"):
        for entry in iu_annotation[split]:
            theirs = r2gen_clean_iu_xray(entry["report"]).split()
            ours = clean_report(entry["report"]).split()
            differing += ours != theirs
            assert ours == drop_empty_sentences(theirs), entry["id"]
    assert differing < 20  # only the few reports with "..", ". ." or a leading period


def test_special_ids_are_distinct(iu_tokenizer):
    tok = iu_tokenizer
    assert len({tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id}) == 4
    assert tok.id_to_token[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]


def test_encode_decode_round_trip(iu_tokenizer):
    tok = iu_tokenizer
    ids = tok.encode("The heart is normal in size. No pleural effusion.")
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == "the heart is normal in size . no pleural effusion ."
    assert tok.decode(tok.encode("zzyzx effusion")) == "<unk> effusion ."


def test_truncation_keeps_eos(iu_tokenizer):
    tok = iu_tokenizer
    long_report = ". ".join(["the lungs are clear"] * 40)
    ids = tok.encode(long_report)
    assert len(ids) == tok.max_length == 60
    assert ids[-1] == tok.eos_id and ids[0] == tok.bos_id
    assert tok.eos_id not in ids[1:-1]
    assert len(tok.encode(long_report, max_length=10)) == 10


def test_batch_helpers(iu_tokenizer):
    tok = iu_tokenizer
    ids, mask = tok.encode_batch(["no effusion.", "the heart is normal. lungs are clear."])
    assert ids.shape == mask.shape and ids.dtype == torch.long
    assert mask[0].sum() == len(tok.encode("no effusion."))
    assert (ids[~mask] == tok.pad_id).all()
    assert tok.decode_batch(ids) == ["no effusion .", "the heart is normal . lungs are clear ."]


def test_save_load(tmp_path, iu_tokenizer):
    path = tmp_path / "tok.json"
    iu_tokenizer.save(path)
    again = ReportTokenizer.load(path)
    assert again.id_to_token == iu_tokenizer.id_to_token
    assert (again.dataset, again.max_length, again.threshold) == ("iu_xray", 60, 3)


def test_mimic_cleaning_and_threshold():
    reports = ["FINDINGS:\n\n  1. Small __ effusion.  2. No pneumothorax."] * 10
    tok = ReportTokenizer.from_reports(reports, dataset="mimic_cxr")
    assert tok.threshold == 10 and tok.max_length == 100
    assert tok.clean(reports[0]) == "findings small effusion . no pneumothorax ."
    assert "pneumothorax" in tok.words and "findings" in tok.words
    assert ReportTokenizer.from_reports(reports[:9] + ["other words here"], dataset="mimic_cxr",
                                        threshold=10).words == ["."]


@pytest.mark.parametrize("report", ["", "   ", "..", "!?"])
def test_empty_report_is_rejected(iu_tokenizer, report):
    with pytest.raises(ValueError, match="empty"):
        iu_tokenizer.encode(report)


def test_decode_rejects_unknown_ids(iu_tokenizer):
    with pytest.raises(ValueError, match="outside"):
        iu_tokenizer.decode([1, 5, 10_000])


def test_bad_load_names_the_file(tmp_path):
    path = tmp_path / "nope.json"
    path.write_text('{"type": "Other"}')
    with pytest.raises(ValueError, match="nope.json"):
        ReportTokenizer.load(path)
