"""Arbitrary input to the readers: only the documented exceptions come out.

Property-based tests (hypothesis): arbitrary bytes and arrays to the image loader,
arbitrary JSON to the config, tokenizer and prediction readers. Each either returns what
it documents or raises the documented exception with a message, never anything else.
"""

import dataclasses
import json

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cknet import CKNetConfig
from cknet.data.images import load_image
from cknet.evaluation import read_records
from cknet.tokenizers import load_tokenizer

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
CONFIG_FIELDS = [f.name for f in dataclasses.fields(CKNetConfig)]
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@QUICK
@given(st.binary(max_size=2000))
def test_any_bytes_as_an_image_file(tmp_path, data):
    path = tmp_path / "image.png"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except ValueError as err:
        assert str(err)
        return
    assert image.dim() == 3 and image.shape[0] == 3 and 0 <= float(image.min()) <= float(image.max()) <= 1


@QUICK
@given(hnp.arrays(dtype=hnp.scalar_dtypes(), shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=6)))
def test_any_array_as_an_image(array):
    try:
        image = load_image(array)
    except ValueError as err:
        assert str(err)
        return
    assert image.dim() == 3 and image.shape[0] == 3 and bool(torch.isfinite(image).all())
    assert 0 <= float(image.min()) <= float(image.max()) <= 1


@QUICK
@given(JSON | st.dictionaries(st.sampled_from(CONFIG_FIELDS), JSON, max_size=6))
def test_any_json_as_a_config(data):
    try:
        config = CKNetConfig.from_json(json.dumps(data))
    except ValueError as err:
        assert str(err)
        return
    config.validate()
    assert CKNetConfig.from_json(config.to_json()) == config


TOKENIZER_KEYS = ["type", "dataset", "max_length", "threshold", "special_tokens", "words", "files", "source"]


@QUICK
@given(JSON | st.dictionaries(st.sampled_from(TOKENIZER_KEYS), JSON | st.just("ReportTokenizer"), max_size=7)
       | st.fixed_dictionaries({"type": st.just("ReportTokenizer"),
                                "special_tokens": st.just(["<pad>", "<bos>", "<eos>", "<unk>"]),
                                "dataset": st.sampled_from(["iu_xray", "mimic_cxr", "x"]),
                                "max_length": JSON, "threshold": JSON, "words": JSON}))
def test_any_json_as_a_tokenizer_file(tmp_path, data):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data))
    try:
        tokenizer = load_tokenizer(path)
    except (ValueError, FileNotFoundError) as err:
        assert str(tmp_path) in str(err) or "tokenizer" in str(err)
        return
    ids = tokenizer.encode("no effusion.") if tokenizer.vocab_size else []
    assert tokenizer.decode(ids) is not None


RECORD = st.dictionaries(st.sampled_from(["id", "prediction", "reference", "other"]),
                         JSON | st.text(min_size=1), max_size=4)


@QUICK
@given(JSON | st.lists(RECORD, max_size=4), st.sampled_from([".json", ".csv"]))
def test_any_json_as_predictions(tmp_path, data, suffix):
    path = tmp_path / f"predictions{suffix}"
    path.write_text(json.dumps(data))
    try:
        records = read_records(path, ("id", "prediction", "reference"))
    except ValueError as err:
        assert str(path) in str(err)
        return
    assert records and all(isinstance(r[k], str) for r in records for k in ("id", "prediction", "reference"))


def test_the_strategies_reach_valid_inputs():
    """The properties above are not vacuous: valid inputs of each kind are accepted."""
    assert load_image(np.zeros((4, 4), np.uint8)).shape == (3, 4, 4)
    assert CKNetConfig.from_json(json.dumps({"d_model": 64})).d_model == 64
