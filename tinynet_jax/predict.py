"""`python -m tinynet_jax.predict`: a shim for the entry point `tinynet_jax.tools.predict`."""
import sys

from tinynet_jax.tools.predict import entry

if __name__ == "__main__":
  sys.exit(entry())
