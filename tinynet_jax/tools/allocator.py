"""glibc malloc settings for XLA:CPU, applied by re-executing the entry point with ``GLIBC_TUNABLES`` set.

XLA:CPU allocates and frees its buffers on the host at every step and every compile. glibc's defaults hand freed
memory back to the kernel (heap trimming, mmap for blocks over 128 KiB) and fault it in again 4 KiB at a time:
the 12-run demo sweep took 21.7M-38M minor page faults and 63-100 s of system time. Keeping freed memory
(trim threshold 4 GiB, top pad 256 MiB, mmap threshold 32 MiB) and backing the heaps with transparent huge pages
(hugetlb=1, glibc >= 2.35; a no-op where THP is off) cut two demo models' faults 9.7M -> 0.23M and their wall
time 83 -> 64-67 s (docs/performance.md). The tunables are read once at process start, hence the re-exec.
"""
from __future__ import annotations

import os
import sys

TUNABLES = ("glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=4294967296:glibc.malloc.top_pad=268435456:"
            "glibc.malloc.mmap_threshold=33554432")
OPT_OUT = "TINYNET_MALLOC_TUNING"  # =0 keeps the process's malloc as it is


def on_glibc() -> bool:
  try:
    return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
  except (AttributeError, ValueError, OSError):  # not Linux, or not glibc (musl)
    return False


def reexec_with_tuned_malloc() -> None:
  """Re-executes this process (same interpreter, same arguments) with `TUNABLES`, once, before anything heavy
  is imported. Nothing happens off glibc, when ``GLIBC_TUNABLES`` is set already (the caller's choice, and the
  re-executed process itself), or with TINYNET_MALLOC_TUNING=0."""
  if "GLIBC_TUNABLES" in os.environ or os.environ.get(OPT_OUT) == "0" or not on_glibc():
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, dict(os.environ, GLIBC_TUNABLES=TUNABLES))
