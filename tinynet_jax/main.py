"""`python -m tinynet_jax.main`: a shim for the entry point `tinynet_jax.tools.main`."""
from tinynet_jax.tools.main import entry

if __name__ == "__main__":
  entry()
