"""Exception types shared by the library and its command-line tools.

Every error a user can cause with bad input derives from `TinynetError`; the CLIs turn exactly these into a
one-line message and exit code 2, and let anything else (a bug) surface with its traceback.
"""


class TinynetError(Exception):
  """Base class for errors caused by user input (bad names, values, files)."""


class SpecError(TinynetError, ValueError):
  """An invalid architecture, scaling factor, resolution or model name."""


class CheckpointError(TinynetError):
  """A checkpoint that is missing, unreadable, or does not match the model."""


class DataError(TinynetError):
  """A dataset that is unknown, not prepared, or asked for in a way it cannot serve."""


class ConfigError(TinynetError, ValueError):
  """A configuration field that is unknown, misspelled or out of range."""


class SearchError(TinynetError, ValueError):
  """A sweep, results file or formula request that cannot be served (too few points, unreachable budget...)."""
