"""`python -m tinynet_jax.flops`: a shim for the entry point `tinynet_jax.tools.flops`."""
import sys

from tinynet_jax.tools.flops import entry

if __name__ == "__main__":
  sys.exit(entry())
