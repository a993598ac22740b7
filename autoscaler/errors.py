"""The one error type for bad user input.

Why a dedicated type: the CLI and (later) the service turn it into one clear message and a
non-zero exit or a 400, while every other exception is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """User input (a flag, a config value, a trace file, an annotation) is not acceptable.

    The message names the field (or file and line) and what is allowed.
    """


class SettingError(InputError):
    """A setting (or a combination of settings) an object refuses, named by attribute: whoever
    built the object from user input reports it under the user's own key path, from `keys`,
    rather than by reading the message text."""

    def __init__(self, owner: str, keys: tuple[str, ...], reason: str) -> None:
        self.owner = owner
        self.keys = keys
        self.reason = reason
        named = ", ".join(f"{owner}.{key}" if owner else key for key in keys) or owner
        super().__init__(f"{named}: {reason}")
