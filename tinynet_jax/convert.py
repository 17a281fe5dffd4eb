"""`python -m tinynet_jax.convert`: a shim for the entry point `tinynet_jax.tools.convert`."""
import sys

from tinynet_jax.tools.convert import entry

if __name__ == "__main__":
  sys.exit(entry())
