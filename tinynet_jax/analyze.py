"""`python -m tinynet_jax.analyze`: a shim for the entry point `tinynet_jax.tools.analyze`."""
import sys

from tinynet_jax.tools.analyze import entry

if __name__ == "__main__":
  sys.exit(entry())
