"""`python -m tinynet_jax.benchmark`: a shim for the entry point `tinynet_jax.tools.benchmark`."""
import sys

from tinynet_jax.tools.benchmark import entry

if __name__ == "__main__":
  sys.exit(entry())
