"""Model checkpoints (save/load), the timm and MindSpore weight ports and their converter, and training-state
checkpoints."""
from tinynet_jax.checkpoints.conversion import convert
from tinynet_jax.checkpoints.mindspore_port import (export_mindspore, mindspore_key, read_ckpt,
                                                    read_mindspore_state_dict, write_ckpt)
from tinynet_jax.checkpoints.store import abstract_variables, load, read_metadata, save
from tinynet_jax.checkpoints.timm_port import (export_state_dict, import_state_dict, read_state_dict,
                                               timm_key)

__all__ = ["abstract_variables", "convert", "export_mindspore", "export_state_dict", "import_state_dict", "load",
           "mindspore_key", "read_ckpt", "read_metadata", "read_mindspore_state_dict", "read_state_dict", "save",
           "timm_key", "write_ckpt"]
