"""A pure-Python emulation of numpy's SIMD `argsort(kind="quicksort")` for 64-bit integer keys.

numpy 2.x hands `np.argsort(a, kind="quicksort")` of an int64 array to Intel's x86-simd-sort
(`x86simdsortStatic::argsort`) when the CPU has AVX-512 (SKX: AVX512F/DQ/VL) or, in numpy 2.4,
AVX2. That argsort is a quicksort whose partition step stores each vector's lanes with
compress-stores and whose leaves (at most 256 items) are sorted by bitonic networks on
registers. Neither is stable, and the order it gives to equal keys depends on the vector width:
the same call returns different tie orders on an AVX-512 and an AVX2 machine. pandas'
`sort_values` (default `kind="quicksort"`) inherits this.

This module replays that algorithm step by step on Python lists, so that the tie order of
either machine can be computed on any machine. It is written from the library's documented
algorithm and its source semantics (x86-simd-sort `src/xss-common-argsort.h`,
`src/xss-network-keyvaluesort.hpp`, the 64-bit vector types of `src/avx512-64bit-common.h`
and `src/avx2-64bit-qsort.hpp`, at the revisions numpy 2.2.6 and 2.4 vendor): no code is taken
from them. `lanes=8` is the AVX-512 path, `lanes=4` the AVX2 one. The AVX2 path can be checked
against the numpy of any AVX2 machine (see `check_against_numpy`); the AVX-512 path shares every
step but the lane count, the sorting networks' width and the compress-store.

Only what numpy's call reaches is emulated: integer keys (no NaN handling), ascending order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

LEAF = 256  # ranges of at most this many items are sorted by the bitonic networks
UNROLL = 4  # vectors per side loaded at once by the partition loop

# One register's sorting network and bitonic merge, as (partner lane of lane i, mask):
# a lane whose mask bit is set keeps the larger key of the pair, the others the smaller.
_SORT_NETWORK = {
    8: ((1, 0xAA), (3, 0xCC), (1, 0xAA), (7, 0xF0), (2, 0xCC), (1, 0xAA)),
    4: ((1, 0xA), (3, 0xC), (1, 0xA)),
}
_MERGE_NETWORK = {
    8: ((4, 0xF0), (2, 0xCC), (1, 0xAA)),
    4: ((2, 0xC), (1, 0xA)),
}


class Fallback(RuntimeError):
    """The quicksort ran out of its depth budget; the library would finish with std::sort."""


def _cmp_merge(keys: list, idx: list, xor: int, mask: int) -> None:
    """One network stage within a register: lanes i and i^xor exchange min/max.

    The index of a lane follows its key: a lane keeps its own index when its new key equals its
    old key (so equal keys never trade indices), else takes its partner's.
    """
    old_k, old_i = keys[:], idx[:]
    for lane in range(len(keys)):
        other = lane ^ xor
        a, b = old_k[lane], old_k[other]
        new = max(a, b) if (mask >> lane) & 1 else min(a, b)
        keys[lane] = new
        idx[lane] = old_i[lane] if new == a else old_i[other]


def _network(keys: list, idx: list, stages) -> None:
    for xor, mask in stages:
        _cmp_merge(keys, idx, xor, mask)


def _reverse(vec: tuple[list, list]) -> None:
    vec[0].reverse()
    vec[1].reverse()


def _coex(v1: tuple[list, list], v2: tuple[list, list]) -> None:
    """Lane-wise compare-exchange of two registers: v1 gets the minima, v2 the maxima.

    The indices swap only where v1's key was the larger (equal keys stay put).
    """
    k1, i1 = v1
    k2, i2 = v2
    for lane in range(len(k1)):
        a, b = k1[lane], k2[lane]
        if min(a, b) != a:
            k1[lane], k2[lane] = b, a
            i1[lane], i2[lane] = i2[lane], i1[lane]


def _bitonic_merge_vectors(vecs: list, lanes: int) -> None:
    """Merge `len(vecs)` registers whose two halves are each sorted (across all lanes)."""
    n = len(vecs)
    # The second half is compared in reverse, which turns two sorted runs into a bitonic one.
    for i in range(n // 2):
        _reverse(vecs[n - i - 1])
        _coex(vecs[i], vecs[n - i - 1])
        _reverse(vecs[n - i - 1])
    num = n // 2
    while num >= 2:
        for j in range(0, n, num):
            for i in range(num // 2):
                _coex(vecs[i + j], vecs[i + j + num // 2])
        num //= 2
    for keys, idx in vecs:
        _network(keys, idx, _MERGE_NETWORK[lanes])


def _argsort_leaf(arr: Sequence[int], arg: list, start: int, n: int, lanes: int) -> None:
    """Sort `arg[start:start+n]` (n <= LEAF) by key with the register networks."""
    num_vecs = LEAF // lanes
    while num_vecs > 1 and n * 2 <= num_vecs * lanes:
        num_vecs //= 2
    vecs = []
    for v in range(num_vecs):
        keys, idx = [], []
        for lane in range(lanes):
            pos = v * lanes + lane
            if pos < n:
                i = arg[start + pos]
                idx.append(i)
                keys.append(arr[i])
            else:  # masked load: padding sorts last and is never stored
                idx.append(UINT64_MAX)
                keys.append(INT64_MAX)
        vecs.append((keys, idx))
    for keys, idx in vecs:
        _network(keys, idx, _SORT_NETWORK[lanes])
    per = 2
    while per <= num_vecs:
        for g in range(num_vecs // per):
            _bitonic_merge_vectors(vecs[g * per:(g + 1) * per], lanes)
        per *= 2
    for v, (keys, idx) in enumerate(vecs):
        for lane in range(lanes):
            pos = v * lanes + lane
            if pos < n:
                arg[start + pos] = idx[lane]


def _pivot(arr: Sequence[int], arg: list, left: int, right: int, lanes: int) -> int:
    """Median of `lanes` evenly spaced samples (the upper median): `right` is inclusive."""
    if right - left < lanes:
        return arr[arg[right]]
    step = (right - left) // lanes
    samples = sorted(arr[arg[left + k * step]] for k in range(1, lanes + 1))
    return samples[lanes // 2]


def _store_partitioned(arr, arg: list, l_store: int, r_end: int, vec: list, pivot: int, lanes: int) -> int:
    """Store one loaded register's indices: keys < pivot at l_store, the rest ending at r_end.

    AVX-512 compress-stores write only the selected lanes, each side in lane order. AVX2 has no
    compress-store: one permutation puts the < lanes first (in order) and the >= lanes last (in
    reverse lane order), and the whole register is written at both ends.
    Returns how many keys were >= pivot.
    """
    ge = [arr[i] >= pivot for i in vec]
    lt_part = [i for i, g in zip(vec, ge) if not g]
    ge_part = [i for i, g in zip(vec, ge) if g]
    amount = len(ge_part)
    if lanes == 8:
        arg[l_store:l_store + len(lt_part)] = lt_part
        arg[r_end - amount:r_end] = ge_part
    else:
        perm = lt_part + ge_part[::-1]
        arg[l_store:l_store + lanes] = perm
        arg[r_end - lanes:r_end] = perm
    return amount


def _partition(arr: Sequence[int], arg: list, left: int, right: int, pivot: int, lanes: int):
    """Partition `arg[left:right]` around `pivot`; returns (split, smallest key, biggest key)."""
    block = UNROLL * lanes
    if right - left <= 8 * block:
        raise AssertionError("ranges this short are sorted by the networks, never partitioned")
    smallest, biggest = INT64_MAX, INT64_MIN
    # A scalar prelude makes the length a multiple of the unrolled block.
    for _ in range((right - left) % block):
        key = arr[arg[left]]
        smallest, biggest = min(smallest, key), max(biggest, key)
        if not key < pivot:
            right -= 1
            arg[left], arg[right] = arg[right], arg[left]
        else:
            left += 1
    if left == right:
        return left, smallest, biggest

    def load(at: int) -> list[list]:
        return [arg[at + v * lanes: at + (v + 1) * lanes] for v in range(UNROLL)]

    first, last = load(left), load(right - block)
    r_store, l_store = right - lanes, left
    left += block
    right -= block
    seen: list[list] = []
    while right != left:
        # Load from the side with less free room, so stores never overwrite unread items.
        if (r_store + lanes) - right < left - l_store:
            right -= block
            batch = load(right)
        else:
            batch = load(left)
            left += block
        for vec in batch:
            amount = _store_partitioned(arr, arg, l_store, r_store + lanes, vec, pivot, lanes)
            l_store += lanes - amount
            r_store -= amount
        seen.extend(batch)
    for vec in first + last:
        amount = _store_partitioned(arr, arg, l_store, r_store + lanes, vec, pivot, lanes)
        l_store += lanes - amount
        r_store -= amount
    keys = [arr[i] for vec in seen + first + last for i in vec]
    return l_store, min(smallest, *keys), max(biggest, *keys)


def _argsort(arr, arg, left, right, budget, lanes):
    if budget <= 0:
        raise Fallback(f"depth budget spent on [{left}, {right}]")
    if right + 1 - left <= LEAF:
        _argsort_leaf(arr, arg, left, right + 1 - left, lanes)
        return
    pivot = _pivot(arr, arg, left, right, lanes)
    split, smallest, biggest = _partition(arr, arg, left, right + 1, pivot, lanes)
    if pivot != smallest:
        _argsort(arr, arg, left, split - 1, budget - 1, lanes)
    if pivot != biggest:
        _argsort(arr, arg, split, right, budget - 1, lanes)


def argsort(keys: Sequence[int], lanes: int = 8, sorted_exit: bool = True) -> list[int]:
    """The permutation numpy's SIMD quicksort argsort returns for int64 `keys`.

    `lanes=8`: an AVX-512 machine (numpy >= 1.25 on x86-64 with AVX512_SKX);
    `lanes=4`: an AVX2 machine under numpy 2.4. `sorted_exit`: keys already in order come back
    as the identity without sorting (the library's releases since 2025, vendored by numpy 2.4;
    numpy 2.2's copy sorts them like any other input).
    """
    if lanes not in _SORT_NETWORK:
        raise ValueError(f"lanes must be 8 (AVX-512) or 4 (AVX2), got {lanes}")
    arr = [int(k) for k in keys]
    if any(not INT64_MIN <= k <= INT64_MAX for k in arr):
        raise ValueError("keys must fit in int64")
    arg = list(range(len(arr)))
    if sorted_exit and all(a <= b for a, b in zip(arr, arr[1:])):
        return arg
    if len(arr) > 1:
        _argsort(arr, arg, 0, len(arr) - 1, 2 * int(math.log2(len(arr))), lanes)
    return arg
