"""Model checkpoints (save/load), the timm weight port and its converter, and training-state checkpoints."""
from tinynet_jax.checkpoints.conversion import convert
from tinynet_jax.checkpoints.store import abstract_variables, load, read_metadata, save
from tinynet_jax.checkpoints.timm_port import (export_state_dict, import_state_dict, read_state_dict,
                                               timm_key)

__all__ = ["abstract_variables", "convert", "export_state_dict", "import_state_dict", "load", "read_metadata",
           "read_state_dict", "save", "timm_key"]
