"""User-facing input errors.

`InputError` carries one line that names the file or field and the problem. The command line
prints it as ``simkit: error: <line>`` and exits with status 2; library callers may catch it.
"""


class InputError(ValueError):
    """Bad input from the user: a file, a record or a configuration value."""
