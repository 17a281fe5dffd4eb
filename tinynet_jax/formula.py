"""`python -m tinynet_jax.formula`: a shim for the entry point `tinynet_jax.tools.formula`."""
import sys

from tinynet_jax.tools.formula import entry

if __name__ == "__main__":
  sys.exit(entry())
