"""Entry points: argument parsing, one-line errors and printing only; the work is in the library packages.

Each is runnable as ``python -m tinynet_jax.<name>`` (a one-line shim beside the package) or
``python -m tinynet_jax.tools.<name>``.
"""
