"""One exception hierarchy; the CLI maps each class to an exit code."""


class MotionwatchError(Exception):
    """Base of every error motionwatch reports to a user as one line."""

    exit_code = 1


class ConfigError(MotionwatchError):
    """A bad config file, key, value or command-line argument (exit 2)."""

    exit_code = 2


class SourceError(MotionwatchError):
    """A source that cannot be opened or read (exit 1)."""


class SinkError(MotionwatchError):
    """Recording output that cannot be written (exit 1)."""


class StorageError(MotionwatchError):
    """The recordings disk is full or failing (exit 1); nothing recorded is touched."""
