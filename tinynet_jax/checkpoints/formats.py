"""Which weight-file format a file holds, from its first bytes: a wrong file gets an error that names the format
expected and the flag that reads it, instead of whatever the wrong reader happens to raise (torch.load's
``weights_only`` hint for a MindSpore .ckpt, say).
"""
from __future__ import annotations

import os

PYTORCH, SAFETENSORS, MINDSPORE = "pytorch", "safetensors", "mindspore"
DESCRIPTIONS = {
    PYTORCH: "a PyTorch checkpoint (torch.save: zip or pickle; read with --timm-checkpoint)",
    SAFETENSORS: "a safetensors file (read with --timm-checkpoint)",
    MINDSPORE: "a MindSpore checkpoint (.ckpt protobuf; read with --mindspore-checkpoint)",
}


def _is_mindspore(head: bytes) -> bool:
  """A Checkpoint message starts with field 1 (a Value, length-delimited) whose first field is its tag (1, LEN)."""
  if len(head) < 3 or head[0] != 0x0A:
    return False
  pos = 1
  while pos < len(head) and head[pos] & 0x80:  # the Value's length, a varint
    pos += 1
  return pos + 1 < len(head) and head[pos + 1] == 0x0A


def sniff(path: str | os.PathLike) -> str | None:
  """PYTORCH, SAFETENSORS, MINDSPORE or None (unknown, empty or unreadable)."""
  try:
    with open(path, "rb") as f:
      head = f.read(64)
  except OSError:
    return None
  if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save: zip (torch >= 1.6) or pickle protocol 2+
    return PYTORCH
  if len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 32:
    return SAFETENSORS  # an 8-byte little-endian header length, then the JSON header
  if _is_mindspore(head):
    return MINDSPORE
  return None
