"""`python -m tinynet_jax.main`: a shim for the entry point `tinynet_jax.tools.main`."""

if __name__ == "__main__":
  from tinynet_jax.tools.allocator import reexec_with_tuned_malloc
  reexec_with_tuned_malloc()  # before jax is imported: glibc reads its tunables at process start
  from tinynet_jax.tools.main import entry
  entry()
