"""The official MindSpore TinyNet checkpoints (.ckpt), read and written without MindSpore.

The file is MindSpore's ``checkpoint.proto`` (mindspore/ccsrc/utils/checkpoint.proto), one or more serialised
messages back to back, which protobuf reads as one:

    message Checkpoint { message Value { required string tag = 1; oneof value { TensorProto tensor = 2;
                                                                                MapTensorProto maptensor = 3; } }
                         repeated Value value = 1; }
    message TensorProto { repeated int64 dims = 1; required string tensor_type = 2; required bytes tensor_content = 3; }

``mindspore.save_checkpoint`` writes one message per tensor, splits a tensor over several consecutive values with
the same tag when it is large, writes a scalar with ``dims = [0]`` and strings as ``"str"`` (UTF-32), and may end the
file with ``b"crc_num"`` and a 10-byte big-endian CRC-32 of what precedes it. A tiny wire-format reader is enough,
and keeps the import free of MindSpore and protobuf.

Names: the official model (mindspore-ai/models, research/cv/tinynet/src/tinynet.py) is timm's layer for layer in
PyTorch's layouts, but its blocks live in ``BlockBuilder.layer`` (``blocks.layer.S.I.*`` for timm's
``blocks.S.I.*``) and BatchNorm holds ``gamma``/``beta``/``moving_mean``/``moving_variance``. A trainer
checkpoint (``save_checkpoint(train_network)``, the official ``last.ckpt``) also holds the optimizer's state and
counters; those are dropped by the rules below, and anything else the model does not have is an error.
"""
from __future__ import annotations

import binascii
import os
import tempfile
from typing import Any, Iterator, Mapping

import numpy as np
from flax import traverse_util

from tinynet_jax.checkpoints import formats
from tinynet_jax.checkpoints.timm_port import export_state_dict, timm_key
from tinynet_jax.errors import CheckpointError

FORMAT = "MindSpore checkpoint (.ckpt: checkpoint.proto messages, as mindspore.save_checkpoint writes them)"

_DTYPES = {"Int8": np.int8, "UInt8": np.uint8, "Int16": np.int16, "UInt16": np.uint16, "Int32": np.int32,
           "UInt32": np.uint32, "Int64": np.int64, "UInt64": np.uint64, "Float16": np.float16,
           "Float32": np.float32, "Float64": np.float64, "Bool": np.bool_}
_TYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_CRC_MARK = b"crc_num"

# Training state in a trainer checkpoint, never network tensors (no module of the model has these names).
# Per-parameter optimizer slots, "<slot>.<parameter name>": Momentum's moments, RMSProp's moment/mean_square
# (/mean_grad when centered), SGD's accum/stat, Adam's moment1/moment2.
OPTIMIZER_SLOTS = ("moments", "moment", "mean_square", "mean_grad", "accum", "stat", "moment1", "moment2")
# Counters and hyper-parameters the optimizer, loss scaler or ModelCheckpoint keep as parameters.
TRAINER_ENTRIES = frozenset({"global_step", "learning_rate", "momentum", "beta1_power", "beta2_power",
                             "scale_sense", "current_iterator_step", "last_overflow_iterator_step",
                             "epoch_num", "step_num"})

_BN_LEAVES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def mindspore_key(path: tuple[str, ...]) -> str:
  """('params', 'blocks_1_0', 'bn1', 'scale') -> 'blocks.layer.1.0.bn1.gamma' (the official model's name)."""
  name = timm_key(path)
  if name.startswith("blocks."):
    name = "blocks.layer." + name[len("blocks."):]
  module, _, leaf = name.rpartition(".")
  if module.rpartition(".")[2].startswith("bn"):  # our BatchNorm modules carry timm's names: bn1, bn2, bn3
    name = f"{module}.{_BN_LEAVES[leaf]}"
  return name


def is_training_state(tag: str) -> bool:
  return tag in TRAINER_ENTRIES or ("." in tag and tag.split(".", 1)[0] in OPTIMIZER_SLOTS)


# --- wire format ---------------------------------------------------------------------------------------------

class _Malformed(Exception):
  pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
  result = shift = 0
  while True:
    if pos >= end:
      raise _Malformed("truncated (a number runs past the end of its message)")
    byte = buf[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    if byte < 0x80:
      return result, pos
    shift += 7
    if shift >= 70:
      raise _Malformed("a number longer than 10 bytes")


def _fields(buf: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, Any]]:
  """(field number, wire type, value) of one message: an int for varints, (start, stop) for length-delimited."""
  while pos < end:
    key, pos = _varint(buf, pos, end)
    number, wire = key >> 3, key & 7
    if number == 0:
      raise _Malformed("field number 0")
    if wire == 0:
      value, pos = _varint(buf, pos, end)
    elif wire == 2:
      size, pos = _varint(buf, pos, end)
      if pos + size > end:
        raise _Malformed("truncated (a field runs past the end of its message)")
      value, pos = (pos, pos + size), pos + size
    elif wire in (1, 5):
      value, pos = None, pos + (8 if wire == 1 else 4)
      if pos > end:
        raise _Malformed("truncated (a fixed-size field runs past the end of its message)")
    else:
      raise _Malformed(f"wire type {wire} (not protobuf, or a group)")
    yield number, wire, value


def _text(buf: memoryview, span: tuple[int, int], what: str) -> str:
  try:
    return bytes(buf[span[0]:span[1]]).decode("utf-8")
  except UnicodeDecodeError:
    raise _Malformed(f"{what} is not UTF-8 text") from None


def _tensor(buf: memoryview, span: tuple[int, int], tag: str) -> tuple[list[int], str, bytes]:
  dims, dtype, content = [], None, None
  for number, wire, value in _fields(buf, *span):
    if number == 1 and wire == 0:
      dims.append(value)
    elif number == 1 and wire == 2:  # packed
      pos, stop = value
      while pos < stop:
        dim, pos = _varint(buf, pos, stop)
        dims.append(dim)
    elif number == 2 and wire == 2:
      dtype = _text(buf, value, f"{tag}'s tensor_type")
    elif number == 3 and wire == 2:
      content = bytes(buf[value[0]:value[1]])
    elif number in (1, 2, 3):
      raise _Malformed(f"{tag}: field {number} has wire type {wire}")
  if dtype is None or content is None:
    raise _Malformed(f"{tag}: a tensor without {'tensor_type' if dtype is None else 'tensor_content'}")
  if any(d >= 1 << 63 for d in dims):
    raise _Malformed(f"{tag}: a negative dimension")
  return dims, dtype, content


def _values(buf: memoryview) -> Iterator[tuple[str, list[int], str, bytes]]:
  for number, wire, value in _fields(buf, 0, len(buf)):
    if number != 1 or wire != 2:
      raise _Malformed(f"a top-level field {number} (wire type {wire}); a Checkpoint holds only values")
    tag = tensor = None
    for inner, inner_wire, inner_value in _fields(buf, *value):
      if inner == 1 and inner_wire == 2:
        tag = _text(buf, inner_value, "a tag")
      elif inner == 2 and inner_wire == 2:
        tensor = inner_value
      elif inner == 3:
        raise _Malformed(f"{tag or 'a value'} is a MapTensor (not a model weight; unsupported)")
    if tag is None or tensor is None:
      raise _Malformed("a value without " + ("a tag" if tag is None else f"a tensor ({tag})"))
    yield (tag, *_tensor(buf, tensor, tag))


def _decode(tag: str, dims: list[int], dtype: str, content: bytes) -> np.ndarray | str:
  if dtype == "str":  # append_dict strings: UTF-32, as numpy's "U" dtype stores them
    if len(content) % 4:
      raise _Malformed(f"{tag}: a string of {len(content)} bytes (UTF-32 needs a multiple of 4)")
    return str(np.frombuffer(content, f"<U{max(1, len(content) // 4)}")[0]) if content else ""
  if dtype == "BFloat16":
    import ml_dtypes  # comes with jax
    np_type = np.dtype(ml_dtypes.bfloat16)
  elif dtype in _DTYPES:
    np_type = np.dtype(_DTYPES[dtype])
  else:
    raise _Malformed(f"{tag}: unknown tensor_type {dtype!r}")
  shape = () if dims == [0] else tuple(dims)  # MindSpore writes a scalar's shape as [0]
  expected = int(np.prod(shape, dtype=np.int64)) * np_type.itemsize
  if len(content) != expected:
    raise _Malformed(f"{tag}: {len(content)} bytes of data for a {dtype} tensor of shape {shape} "
                     f"({expected} bytes)")
  return np.frombuffer(content, np_type.newbyteorder("<")).reshape(shape).astype(np_type)


def read_ckpt(path: str | os.PathLike) -> dict[str, np.ndarray | str]:
  """Every entry of a MindSpore .ckpt, in file order: arrays, or str for string entries.

  Raises:
    CheckpointError: a missing, empty, truncated or corrupt file, or one in another format, in one line.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f"no checkpoint file at {path}")
  kind = formats.sniff(path)
  if kind in (formats.PYTORCH, formats.SAFETENSORS):
    raise CheckpointError(f"{path} is {formats.DESCRIPTIONS[kind]}, not a {FORMAT}")
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise CheckpointError(f"cannot read {path}: {e}") from None
  try:
    if not data:
      raise _Malformed("the file is empty")
    if len(data) >= 17 and data[-17:-10] == _CRC_MARK:
      data, crc = data[:-17], int.from_bytes(data[-10:], "big")
      if binascii.crc32(data) != crc:
        raise _Malformed("its CRC-32 does not match its contents (the file is damaged)")
    entries: dict[str, np.ndarray | str] = {}
    pending: tuple[str, list[int], str, list[bytes]] | None = None
    for tag, dims, dtype, content in _values(memoryview(data)):
      if pending is not None and pending[0] == tag:  # one large tensor split over consecutive values
        if (dims, dtype) != (pending[1], pending[2]):
          raise _Malformed(f"{tag}: its parts disagree on shape or type")
        pending[3].append(content)
        continue
      if pending is not None:
        entries[pending[0]] = _decode(pending[0], pending[1], pending[2], b"".join(pending[3]))
      if tag in entries:
        raise _Malformed(f"{tag} appears twice")
      pending = (tag, dims, dtype, [content])
    if pending is None:
      raise _Malformed("it holds no tensors")
    entries[pending[0]] = _decode(pending[0], pending[1], pending[2], b"".join(pending[3]))
  except _Malformed as e:
    raise CheckpointError(f"cannot read {path} as a {FORMAT}: {e}") from None
  return entries


def _varint_bytes(value: int) -> bytes:
  out = bytearray()
  while True:
    byte, value = value & 0x7F, value >> 7
    out.append(byte | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  return _varint_bytes(number << 3 | 2) + _varint_bytes(len(payload)) + payload


def _encode(tag: str, value: np.ndarray | str) -> tuple[list[int], str, bytes]:
  if isinstance(value, str):
    return [0], "str", np.array(value).tobytes()  # numpy's "U" dtype is UTF-32, MindSpore's string layout
  array = np.asarray(value)
  if array.dtype.name == "bfloat16":
    dtype = "BFloat16"
  elif array.dtype in _TYPE_NAMES:
    dtype = _TYPE_NAMES[array.dtype]
  else:
    raise CheckpointError(f"{tag}: no MindSpore tensor_type for dtype {array.dtype}")
  content = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
  return list(array.shape) or [0], dtype, content


def _value_message(tag: str, dims: list[int], dtype: str, content: bytes) -> bytes:
  packed = b"".join(_varint_bytes(d) for d in dims)
  tensor = _field(1, packed) + _field(2, dtype.encode()) + _field(3, content)
  return _field(1, _field(1, tag.encode()) + _field(2, tensor))


def write_ckpt(path: str | os.PathLike, entries: Mapping[str, np.ndarray | str], *, split_bytes: int = 0,
               crc: bool = False) -> None:
  """Writes `entries` as mindspore.save_checkpoint does (one message per tensor), atomically.

  `split_bytes` > 0 spreads larger tensors over consecutive same-tag values (each with the whole tensor's dims),
  as MindSpore does with huge ones; `crc` appends MindSpore's CRC-32 trailer. For tests, and for handing our
  weights to MindSpore.
  """
  path = os.fspath(path)
  parts = []
  for tag, value in entries.items():
    dims, dtype, content = _encode(tag, value)
    step = split_bytes if split_bytes > 0 else max(1, len(content))
    for start in range(0, max(1, len(content)), step):
      parts.append(_value_message(tag, dims, dtype, content[start:start + step]))
  data = b"".join(parts)
  if crc:
    data += _CRC_MARK + binascii.crc32(data).to_bytes(10, "big")
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ckpt", dir=os.path.dirname(os.path.abspath(path)))
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


# --- network tensors -------------------------------------------------------------------------------------------

def read_mindspore_state_dict(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], list[str]]:
  """The network tensors of a .ckpt (MindSpore names) and the names of the training state dropped."""
  entries = read_ckpt(path)
  tensors, dropped, strings = {}, [], []
  for tag, value in entries.items():
    if is_training_state(tag):
      dropped.append(tag)
    elif isinstance(value, str):
      strings.append(tag)
    else:
      tensors[tag] = value
  if strings:
    raise CheckpointError(f"{path} holds string entries the model does not have: {', '.join(sorted(strings))}")
  return tensors, dropped


def export_mindspore(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Our variables under the official MindSpore model's names, in PyTorch's (= MindSpore's) layouts."""
  timm = export_state_dict(variables)
  return {mindspore_key(path): timm[timm_key(path)] for path in traverse_util.flatten_dict(dict(variables))}
