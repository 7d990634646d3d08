"""CrossModalKnowledgeMatrix against an independent float64 loop implementation of eqs. 4-9
and of the two fusions that keep the input (residual, gated)."""

import math

import numpy as np
import pytest
import torch

from cknet import CrossModalKnowledgeMatrix, knowledge_query
from cknet.kernels.reference import SUM_EPS


def reference(module, features, knowledge):
    """Equations 4-9 with explicit loops, in float64 numpy."""
    Wq = module.query_proj.weight.detach().double().numpy()
    Wk = module.key_proj.weight.detach().double().numpy()
    Wg = module.value_proj.weight.detach().double().numpy()
    Wf = module.fuse.weight.detach().double().numpy()
    bf = module.fuse.bias.detach().double().numpy()
    v_all = features.detach().double().numpy()
    G_all = knowledge.detach().double().numpy()
    B, L, d_model = v_all.shape
    H, gamma = module.num_heads, module.gamma
    d = d_model // H
    out = np.zeros((B, L, d_model))
    for b in range(B):
        G = G_all[b] if G_all.ndim == 3 else G_all
        M = G.shape[0]
        for i in range(L):
            v = v_all[b, i]
            q = Wq @ v                                   # eq. 4
            k = [Wk @ G[j] for j in range(M)]            # eq. 4
            g = [Wg @ G[j] for j in range(M)]            # eq. 7
            r = np.zeros(d_model)
            for h in range(H):
                sl = slice(h * d, (h + 1) * d)
                D = [float(q[sl] @ k[j][sl]) / math.sqrt(d) for j in range(M)]  # eq. 5
                chosen = sorted(range(M), key=lambda j: -D[j])[:gamma]
                if module.weighting == "softmax":
                    top = max(D[j] for j in chosen)
                    e = {j: math.exp(D[j] - top) for j in chosen}
                    w = {j: e[j] / sum(e.values()) for j in chosen}
                else:                                                          # eq. 6
                    total = sum(D[j] for j in chosen)
                    if abs(total) < SUM_EPS:
                        total = SUM_EPS if total >= 0 else -SUM_EPS
                    w = {j: D[j] / total for j in chosen}
                for j in chosen:                                               # eq. 8
                    r[sl] += w[j] * g[j][sl]
            if module.fusion == "gated":                                       # k = v + a * (r W_r)
                out[b, i] = v + module.gate.detach().double().numpy() * (Wf @ r + bf)
            else:
                out[b, i] = Wf @ np.concatenate([v, r]) + bf                   # eq. 9
                if module.fusion == "residual":                                # k = v + FCN(...)
                    out[b, i] += v
    return out


@pytest.mark.parametrize("weighting", ["softmax", "sum"])
@pytest.mark.parametrize(
    "B, L, M, d_model, d_k, heads, gamma, shared",
    [
        (2, 5, 7, 16, 12, 4, 1, False),
        (2, 5, 7, 16, 12, 4, 7, False),   # gamma = M: every knowledge vector
        (3, 4, 41, 32, 24, 8, 8, False),  # the default graph's 41 rows
        (2, 6, 9, 24, 8, 3, 3, True),     # one matrix shared across the batch
        (1, 1, 5, 8, 8, 1, 5, True),
    ],
)
def test_matches_float64_reference(weighting, B, L, M, d_model, d_k, heads, gamma, shared):
    module = CrossModalKnowledgeMatrix(d_model, d_k, heads, gamma, weighting).double()
    features = torch.randn(B, L, d_model, dtype=torch.float64)
    knowledge = torch.randn(M, d_k, dtype=torch.float64) if shared else \
        torch.randn(B, M, d_k, dtype=torch.float64)
    ours = module(features, knowledge).detach().numpy()
    np.testing.assert_allclose(ours, reference(module, features, knowledge), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("fusion", ["residual", "gated"])
@pytest.mark.parametrize("shared", [False, True])
def test_fusions_match_float64_reference(fusion, shared):
    module = CrossModalKnowledgeMatrix(16, 12, 4, 3, fusion=fusion).double()
    if fusion == "gated":  # an open gate: at its initial 0 the output is v alone
        torch.nn.init.normal_(module.gate)
    features = torch.randn(2, 5, 16, dtype=torch.float64)
    shape = (7, 12) if shared else (2, 7, 12)
    knowledge = torch.randn(*shape, dtype=torch.float64)
    np.testing.assert_allclose(module(features, knowledge).detach().numpy(),
                               reference(module, features, knowledge), rtol=1e-9, atol=1e-9)


def test_gated_fusion_starts_as_the_input_and_learns_its_gate():
    """At initialisation the gated module passes v through unchanged (the model is Base);
    the gate still receives a gradient, so training can open it."""
    module = CrossModalKnowledgeMatrix(16, 12, 4, 3, fusion="gated")
    features, knowledge = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    out = module(features, knowledge)
    assert torch.equal(out, features)
    out.square().sum().backward()
    assert module.gate.grad is not None and module.gate.grad.abs().sum() > 0


def test_dropped_studies_retrieve_nothing():
    """Knowledge dropout zeroes r for the dropped studies (equation 9 with r = 0) and
    leaves the kept ones as they were."""
    module = CrossModalKnowledgeMatrix(16, 12, 4, 3).double()
    features = torch.randn(3, 5, 16, dtype=torch.float64)
    for knowledge in (torch.randn(3, 7, 12, dtype=torch.float64), torch.randn(7, 12, dtype=torch.float64)):
        keep = torch.tensor([True, False, True])
        dropped = module(features, module.project_knowledge(knowledge).drop_studies(keep))
        full = module(features, knowledge)
        without_r = module.fuse(torch.cat([features, torch.zeros_like(features)], dim=-1))
        torch.testing.assert_close(dropped[keep], full[keep])
        torch.testing.assert_close(dropped[1], without_r[1])


def test_float32_close_to_reference():
    module = CrossModalKnowledgeMatrix(32, 16, 4, 3)
    features, knowledge = torch.randn(2, 6, 32), torch.randn(2, 10, 16)
    np.testing.assert_allclose(module(features, knowledge).detach().numpy(),
                               reference(module, features, knowledge), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("weighting", ["softmax", "sum"])
def test_gradcheck(weighting):
    torch.manual_seed(3)
    module = CrossModalKnowledgeMatrix(8, 6, 2, 2, weighting).double()
    features = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    knowledge = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, g: module(v, g), (features, knowledge))


def test_sum_weighting_guards_zero_denominator():
    queries = torch.zeros(1, 1, 1, 4)  # all scores 0: the sum of the selected is 0
    keys = torch.randn(1, 1, 5, 4)
    out = knowledge_query(queries, keys, torch.randn(1, 1, 5, 4), top_k=3, weighting="sum")
    assert torch.isfinite(out).all()


def test_only_top_k_values_contribute():
    # Brute force on a tiny case: the output equals the softmax-weighted sum of the
    # values of the best-scoring keys, whatever the other values are.
    keys = torch.eye(4)[None, None]  # key j = e_j
    queries = torch.tensor([[[[4.0, 3.0, 0.0, -1.0]]]])
    values = torch.randn(1, 1, 4, 4)
    out = knowledge_query(queries, keys, values, top_k=2)
    w = torch.tensor([4.0, 3.0]).div(2.0).softmax(0)  # scores / sqrt(4)
    expected = w[0] * values[0, 0, 0] + w[1] * values[0, 0, 1]
    torch.testing.assert_close(out[0, 0, 0], expected)
    values[0, 0, 2:] = 1e6
    torch.testing.assert_close(knowledge_query(queries, keys, values, top_k=2)[0, 0, 0], expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(top_k=0), "top_k"), (dict(top_k=6), "top_k"), (dict(weighting="max"), "weighting")],
)
def test_query_argument_errors(kwargs, match):
    args = dict(queries=torch.randn(1, 2, 3, 4), keys=torch.randn(2, 5, 4),
                values=torch.randn(2, 5, 4), top_k=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        knowledge_query(**args)


def test_query_shape_errors():
    with pytest.raises(ValueError, match="keys"):
        knowledge_query(torch.randn(1, 2, 3, 4), torch.randn(3, 5, 4), torch.randn(3, 5, 4), 2)
    with pytest.raises(ValueError, match="queries"):
        knowledge_query(torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4), 2)


def test_attention_weights_are_the_top_k_weights():
    module = CrossModalKnowledgeMatrix(16, 8, 2, 3)
    features, knowledge = torch.randn(2, 5, 16), torch.randn(2, 7, 8)
    weights = module.attention(features, knowledge)
    assert weights.shape == (2, 2, 5, 7)
    assert ((weights > 0).sum(-1) == 3).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 5))
