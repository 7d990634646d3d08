"""`cknet.explain.explain`: where each word of a report looked.

References: the attention output the decoder itself computed (captured at its output
projection) against the weights `explain` returns times the values; the equation-(6)
weights of `knowledge_attention`; the tokenizer's own encoding of the report.
"""

import pytest
import torch
from conftest import small_config
from test_model import images_for

from cknet import CKNet
from cknet.explain import explain, knowledge_attention


@pytest.fixture(scope="module")
def model(iu_tokenizer):
    torch.manual_seed(0)
    return CKNet(small_config(num_heads=1), iu_tokenizer).eval()


def test_word_maps_are_the_weights_the_decoder_used(model):
    images = images_for(model.config)
    reports = ["the heart is normal in size .", "no pleural effusion . the lungs are clear ."]
    explained = explain(model, images, reports)
    attention = model.transformer.decoder_layers[-1].cross_attn
    outputs = []
    hook = attention.out_proj.register_forward_pre_hook(lambda module, args: outputs.append(args[0]))
    input_ids, _ = model.tokenizer.encode_batch(reports)
    with torch.no_grad():
        encoding = model.encode(images=images)
        model.decode(input_ids, encoding)
        _, values = attention.project_key_value(encoding.memory)  # (B, 1, S, d_model): one head
    hook.remove()
    for row, explanation in enumerate(explained):
        count = len(explanation.words)
        weights = explanation.patch_attention.flatten(1)  # (T, V*h*w)
        torch.testing.assert_close(weights @ values[row, 0], outputs[0][row, :count], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(weights.sum(-1), torch.ones(count))
        views, h, w = explanation.patch_attention.shape[1:]
        assert views == model.config.num_views and h * w == encoding.memory.shape[1] // views


def test_words_and_node_weights_follow_the_report(model):
    images = images_for(model.config)
    reports = ["the heart is normal in size .", "no pleural effusion ."]
    explained = explain(model, images, reports)
    input_ids, _ = model.tokenizer.encode_batch(reports)
    _, token_weights = knowledge_attention(model, images, input_ids)
    for row, (report, explanation) in enumerate(zip(reports, explained)):
        assert explanation.words == report.split() and explanation.report == report
        count = len(explanation.words)
        torch.testing.assert_close(explanation.node_attention, token_weights[row, :count])
        assert explanation.node_names == ["(global node)", *model.graph.nodes]
    assert [e.words for e in model.explain(images, reports)] == [e.words for e in explained]


def test_explains_its_own_report_by_default(model):
    images = images_for(model.config)[:1]
    own = model.generate(images, return_scores=True)[0][0]
    explained = explain(model, images)[0]
    assert explained.report == own.tokenized
    words = [i for i in own.token_ids if i != model.tokenizer.eos_id]  # cut at the limit: maybe no <eos>
    assert [model.tokenizer.decode([i]) for i in words] == explained.words
    with pytest.raises(ValueError, match="list of 1 report"):
        explain(model, images, ["one", "two"])


def test_a_model_without_knowledge_has_no_node_weights(iu_tokenizer):
    model = CKNet(small_config(knowledge_source="none"), iu_tokenizer).eval()
    explained = explain(model, images_for(model.config)[:1], ["no effusion ."])[0]
    assert explained.node_attention is None and explained.node_names == []
    assert explained.patch_attention.shape[0] == 3


def test_explain_command_draws_every_word_row_and_refuses_to_overwrite(model, tmp_path, capsys):
    from conftest import SAMPLES, require
    from PIL import Image

    from cknet.cli import main

    folder = require(SAMPLES / "iu_xray" / "CXR7_IM-2263")
    model.save_pretrained(tmp_path / "model")
    figure = tmp_path / "words.png"
    report = "the heart is normal . no pleural effusion ."
    assert main(["explain", str(folder), "--model", str(tmp_path / "model"), "--output", str(figure),
                 "--report", report, "--words", "4"]) == 0
    printed = capsys.readouterr().out
    assert "report: The heart is normal. No pleural effusion." in printed  # readable, as generate prints
    assert printed.count("most attended knowledge node") == 4
    assert "drawn: the first 4 of its 7 words (the, heart, is, normal); the other 3 with --words 7" in printed
    width, height = Image.open(figure).size
    assert width > 2 * 150 and height > 2 * 150  # two columns of two word rows, two views each
    assert main(["explain", str(folder), "--model", str(tmp_path / "model"), "--output", str(figure)]) == 1
    assert "--overwrite" in capsys.readouterr().err
