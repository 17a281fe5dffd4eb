"""`python -m tinynet_jax.cam`: a shim for the entry point `tinynet_jax.tools.cam`."""
import sys

from tinynet_jax.tools.cam import entry

if __name__ == "__main__":
  sys.exit(entry())
