"""Which example goes where: the epoch shuffles, the global-batch layout and the eval split, in numpy only.

Every train example is addressed by its *global position* ``g = step * global_batch + row``; its epoch is
``g // n`` and its index is ``permutation(seed, epoch)[g % n]``. Process ``p`` takes rows
``[p * B_local, (p + 1) * B_local)`` of each global batch, so what a position holds never depends on the
number of processes, and resuming at step ``s`` only needs positions from ``s * global_batch`` on.

The permutation is an argsort of a 64-bit integer hash (splitmix64), not a numpy `Generator` stream, so it is
the same on every numpy version and platform.
"""
from __future__ import annotations

import numbers

import numpy as np

from tinynet_jax.errors import DataError


def _splitmix64(x: np.ndarray) -> np.ndarray:
  """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
  x = np.asarray(x, np.uint64)
  with np.errstate(over="ignore"):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_ints(*values) -> np.ndarray:
  """A 64-bit hash of a tuple of integers (scalars or broadcastable arrays)."""
  h = np.uint64(0)
  for value in values:
    if isinstance(value, int):
      v = np.uint64(value % (1 << 64))
    else:
      v = np.asarray(value).astype(np.int64).astype(np.uint64)  # int64 wraps to uint64
    h = _splitmix64(h ^ _splitmix64(v))
  return h


def seed_key(seed: int, salt: int = 0) -> int:
  """A non-negative int63 derived from the user's seed (TensorFlow's stateless seeds are int64)."""
  return int(hash_ints(int(seed), salt)) >> 1


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The order of the n examples in `epoch`: a pure function of (seed, epoch, n)."""
  keys = hash_ints(seed_key(seed), epoch, np.arange(n, dtype=np.int64))
  return np.argsort(keys, kind="stable")


def batch_positions(step: int, global_batch_size: int, process_index: int, process_count: int) -> np.ndarray:
  """Global positions of this process's rows of global batch `step` (int64)."""
  local = global_batch_size // process_count
  start = step * global_batch_size + process_index * local
  return np.arange(start, start + local, dtype=np.int64)


class IndexSchedule:
  """Maps global positions to example indices, keeping the last two epochs' permutations."""

  def __init__(self, seed: int, n: int):
    self.seed, self.n = seed, n
    self._cache: dict[int, np.ndarray] = {}

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._cache:
      if len(self._cache) >= 2:
        del self._cache[min(self._cache)]
      self._cache[epoch] = epoch_permutation(self.seed, epoch, self.n)
    return self._cache[epoch]

  def __call__(self, positions: np.ndarray) -> np.ndarray:
    epochs, offsets = np.divmod(positions, self.n)
    indices = np.empty_like(positions)
    for epoch in np.unique(epochs):
      rows = epochs == epoch
      indices[rows] = self._permutation(int(epoch))[offsets[rows]]
    return indices


def even_split(n: int, process_index: int, process_count: int) -> tuple[int, int]:
  """[start, stop) of this process's contiguous share of n eval examples; the first n % count get one more."""
  base, extra = divmod(n, process_count)
  start = process_index * base + min(process_index, extra)
  return start, start + base + (process_index < extra)


def eval_num_batches(n: int, local_batch_size: int, process_count: int) -> int:
  """Batches every process yields: enough for the largest share, so all processes run the same count."""
  largest = -(-n // process_count)
  return -(-largest // local_batch_size)


def local_batch_size(global_batch_size: int, process_index: int, process_count: int) -> int:
  """Rows per process; a DataError unless the global batch splits evenly over the processes."""
  if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, numbers.Integral) \
      or global_batch_size <= 0:
    raise DataError(f"global_batch_size must be a positive integer, got {global_batch_size!r}")
  if not isinstance(process_count, int) or process_count <= 0:
    raise DataError(f"process_count must be a positive integer, got {process_count!r}")
  if not isinstance(process_index, int) or not 0 <= process_index < process_count:
    raise DataError(f"process_index must be in [0, {process_count}), got {process_index!r}")
  if global_batch_size % process_count:
    raise DataError(f"global_batch_size {global_batch_size} does not divide evenly over {process_count} "
                    "processes")
  return global_batch_size // process_count
