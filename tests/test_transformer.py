import torch
import torch.nn.functional as F

from cknet.modules.attention import beam_attention, sinusoidal_positions
from cknet.modules.cache import DecoderCache


def test_beam_attention_equals_attention_over_gathered_histories():
    studies, group, heads, length, d = 3, 4, 2, 7, 5
    rows = studies * group
    keys, values = torch.randn(rows, heads, length, d), torch.randn(rows, heads, length, d)
    queries = torch.randn(rows, heads, 1, d)
    ancestry = torch.randint(0, group, (rows, length))
    physical = (torch.arange(rows) // group * group)[:, None] + ancestry  # (rows, L)
    times = torch.arange(length)[None, :].expand(rows, -1)
    own_keys = keys[physical, :, times].transpose(1, 2)  # (rows, H, L, d)
    own_values = values[physical, :, times].transpose(1, 2)
    expected = F.scaled_dot_product_attention(queries, own_keys, own_values)
    torch.testing.assert_close(beam_attention(queries, keys, values, ancestry, group), expected)


def test_cache_grows_past_its_capacity():
    cache = DecoderCache(capacity=2)
    chunks = [torch.randn(2, 3, n, 4) for n in (1, 2, 3)]
    for chunk in chunks:
        keys, values = cache.append(0, chunk, -chunk)
        cache.advance(chunk.shape[2])
    torch.testing.assert_close(keys, torch.cat(chunks, 2))
    torch.testing.assert_close(values, -torch.cat(chunks, 2))
    assert cache.length == 6


def test_reorder_moves_histories_with_and_without_groups():
    history = torch.randn(4, 1, 3, 2)  # 2 studies x 2 beams, 3 tokens
    index = torch.tensor([1, 1, 2, 3])  # in study 0 both beams continue beam 1
    plain = DecoderCache()
    plain.append(0, history, history)
    plain.advance(3)
    plain.reorder_tokens(index)
    torch.testing.assert_close(plain.self_keys[0][:, :, :3], history[index])
    grouped = DecoderCache(group=2)
    grouped.append(0, history, history)
    grouped.advance(3)
    grouped.reorder_tokens(index)
    assert grouped.ancestry[:, :3].tolist() == [[1] * 3, [1] * 3, [0] * 3, [1] * 3]
    torch.testing.assert_close(grouped.self_keys[0][:, :, :3], history)  # nothing copied


def test_sinusoidal_positions():
    pe = sinusoidal_positions(torch.tensor([0, 3]), 6)
    expected = torch.zeros(2, 6)
    for row, position in enumerate([0.0, 3.0]):
        for i in range(3):
            angle = torch.tensor(position / 10000 ** (2 * i / 6))
            expected[row, 2 * i], expected[row, 2 * i + 1] = angle.sin(), angle.cos()
    torch.testing.assert_close(pe, expected)
