"""The fused Triton top-k query against the PyTorch path: in Triton's CPU interpreter
here, compiled on the GPU when there is one (`DEVICE`)."""

import logging

import pytest
import torch
from conftest import DEVICE, small_config

from cknet import CKNet
from cknet.kernels import knowledge_query, triton_available

pytestmark = pytest.mark.skipif(
    not triton_available(DEVICE),
    reason="Triton cannot run here (not installed, or no TRITON_INTERPRET=1)",
)


def inputs(batch, heads, length, keys, dim, shared, dtype, positive=False):
    torch.manual_seed(batch * 100 + keys)
    q = torch.randn(batch, heads, length, dim, device=DEVICE)
    k = torch.randn(*((heads, keys, dim) if shared else (batch, heads, keys, dim)), device=DEVICE)
    if positive:  # scores well away from a zero sum, for the literal equation 6 at gamma = N
        q, k = q.abs(), k.abs()
    v = torch.randn_like(k)
    return [t.to(dtype).requires_grad_() for t in (q, k, v)]


@pytest.mark.parametrize("weighting", ["softmax", "sum"])
@pytest.mark.parametrize("shape", [(2, 3, 20, 41, 24, False), (1, 2, 5, 7, 16, True),
                                   (3, 1, 33, 16, 64, False)])
@pytest.mark.parametrize("gamma", ["one", "eight", "all"])
def test_matches_the_pytorch_path_fp32(weighting, shape, gamma):
    batch, heads, length, keys, dim, shared = shape
    top_k = {"one": 1, "eight": min(8, keys), "all": keys}[gamma]
    q, k, v = inputs(batch, heads, length, keys, dim, shared, torch.float32, positive=gamma == "all")
    reference = knowledge_query(q, k, v, top_k, weighting, backend="torch")
    fused = knowledge_query(q, k, v, top_k, weighting, backend="triton")
    torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-5)
    grad = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, (q, k, v), grad)
    got = torch.autograd.grad(fused, (q, k, v), grad)
    for name, a, b in zip("qkv", got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=f"gradient of {name}")


@pytest.mark.parametrize("dtype", [
    pytest.param(torch.bfloat16, marks=pytest.mark.skipif(
        DEVICE.type != "cuda", reason="Triton's CPU interpreter reads bfloat16 as raw bits")),
    torch.float16,
])
def test_half_precision_inputs_accumulate_in_fp32(dtype):
    q, k, v = inputs(2, 2, 17, 41, 32, False, dtype)
    fused = knowledge_query(q, k, v, 8, backend="triton")
    assert fused.dtype == dtype
    reference = knowledge_query(q.float(), k.float(), v.float(), 8, backend="torch")
    torch.testing.assert_close(fused.float(), reference, rtol=2e-2, atol=2e-2)
    grads = torch.autograd.grad(fused.float().sum(), (q, k, v))
    assert all(g.dtype == dtype and torch.isfinite(g.float()).all() for g in grads)


def test_ties_go_to_the_lower_index_on_both_paths():
    keys = torch.zeros(1, 1, 6, 16, device=DEVICE)
    keys[..., [1, 3, 4], 0] = 1.0  # three equal best scores
    queries = torch.zeros(1, 1, 1, 16, device=DEVICE)
    queries[..., 0] = 1.0
    values = torch.eye(6, 16, device=DEVICE)[None, None]
    for backend in ("torch", "triton"):
        out = knowledge_query(queries, keys, values, 2, backend=backend)
        torch.testing.assert_close(out[0, 0, 0, :6].cpu(), torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0, 0.0]))


def test_cknet_forward_and_training_step_agree_across_backends(iu_tokenizer, caplog):
    results = {}
    for backend in ("torch", "triton"):
        torch.manual_seed(0)
        model = CKNet(small_config(kernel=backend, knowledge_source="random"), iu_tokenizer).to(DEVICE)
        images = torch.randn(2, 2, 3, 64, 64, device=DEVICE)
        ids, _ = iu_tokenizer.encode_batch(["the heart is normal .", "no pleural effusion ."])
        ids = ids.to(DEVICE)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with caplog.at_level(logging.DEBUG, logger="cknet.kernels.dispatch"):
            loss = model(images, ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        results[backend] = (loss.detach(), model.knowledge_source.matrix.detach().clone())
        assert f"{backend} path" in caplog.text
        caplog.clear()
    torch.testing.assert_close(results["triton"][0], results["torch"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results["triton"][1], results["torch"][1], rtol=1e-4, atol=1e-5)


def test_environment_override(monkeypatch):
    q, k, v = inputs(1, 1, 3, 5, 16, False, torch.float32)
    monkeypatch.setenv("CKNET_KERNEL", "nonsense")
    with pytest.raises(ValueError, match="CKNET_KERNEL"):
        knowledge_query(q, k, v, 2)
    monkeypatch.setenv("CKNET_KERNEL", "triton")
    torch.testing.assert_close(knowledge_query(q, k, v, 2, backend="torch"),
                               knowledge_query(q, k, v, 2, backend="triton"))
