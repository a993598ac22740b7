"""The one error type for bad user input.

Why a dedicated type: the CLI and (later) the service turn it into one clear message and a
non-zero exit or a 400, while every other exception is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """User input (a flag, a config value, a trace file, an annotation) is not acceptable.

    The message names the field (or file and line) and what is allowed.
    """
