"""Compact key sets: sorted, merged [low, high] intervals.

Source keys are dense sequences, so the set of every key ever emitted for a dimension,
or every key a source table holds, is a handful of intervals however many rows it
holds: cheap to keep in the lake and to read on every run.
"""

from __future__ import annotations

import numpy as np

Intervals = list[list[int]]


def unique(keys) -> np.ndarray:
    """The keys, sorted, each once. By a sort: numpy's own `unique` hashes them, which
    on a million distinct keys takes a hundred times as long."""
    keys = np.sort(np.asarray(keys, dtype=np.int64))
    if keys.size < 2:
        return keys
    first = np.empty(keys.size, dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def from_keys(keys: np.ndarray) -> Intervals:
    """The intervals holding exactly these keys."""
    keys = unique(keys)
    if keys.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(keys) != 1)
    starts = np.concatenate(([keys[0]], keys[breaks + 1]))
    ends = np.concatenate((keys[breaks], [keys[-1]]))
    return [[int(s), int(e)] for s, e in zip(starts, ends, strict=True)]


def add(intervals: Intervals, keys) -> Intervals:
    """The union of the intervals and the keys, merged."""
    merged: Intervals = []
    for low, high in sorted([*intervals, *from_keys(np.asarray(keys, dtype=np.int64))]):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return merged


def missing(intervals: Intervals, keys) -> np.ndarray:
    """The keys (unique, sorted) that no interval holds."""
    keys = unique(keys)
    if not intervals:
        return keys
    starts = np.array([i[0] for i in intervals], dtype=np.int64)
    ends = np.array([i[1] for i in intervals], dtype=np.int64)
    slot = np.searchsorted(starts, keys, side="right") - 1
    inside = (slot >= 0) & (keys <= ends[np.clip(slot, 0, None)])
    return keys[~inside]


def count(intervals: Intervals) -> int:
    """How many keys the intervals hold."""
    return sum(high - low + 1 for low, high in intervals)


def subtract(intervals: Intervals, taken: Intervals) -> Intervals:
    """The keys of `intervals` that `taken` does not hold, as intervals (both sorted and
    merged): a walk through both lists, whatever the keys they span."""
    left: Intervals = []
    j = 0
    for low, high in intervals:
        while j < len(taken) and taken[j][1] < low:
            j += 1
        k, start = j, low
        while k < len(taken) and taken[k][0] <= high:
            if taken[k][0] > start:
                left.append([start, taken[k][0] - 1])
            start = max(start, taken[k][1] + 1)
            k += 1
        if start <= high:
            left.append([start, high])
    return left


def spelled_out(intervals: Intervals) -> np.ndarray:
    """Every key the intervals hold."""
    parts = [np.arange(low, high + 1, dtype=np.int64) for low, high in intervals]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
