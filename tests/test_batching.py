"""Packing requests into batches: groups kept whole, a row limit, a bound on padding."""

from __future__ import annotations

from lm_eval_audio.models.batching import pack


def test_pack_keeps_groups_whole_under_the_row_limit():
    groups = [[100], [98, 98], [95], [80], [79], [50]]
    assert pack(groups, len, 3) == [[[100], [98, 98]], [[95], [80], [79]], [[50]]]


def test_pack_starts_a_batch_before_a_row_it_would_pad_by_more_than_the_bound():
    groups = [[100], [98], [95], [80], [79, 79], [50]]
    batches = pack(groups, len, 3, length_of=lambda g: g[0], max_padding=0.1)
    assert batches == [[[100], [98], [95]], [[80], [79, 79]], [[50]]]
    # the bound is against the batch's first (longest) row, not the previous one
    assert pack([[100], [92], [85]], len, 8, length_of=lambda g: g[0], max_padding=0.1) == [[[100], [92]], [[85]]]
