"""Sinks turn tracker signals into files and messages, off the capture thread."""

from motionwatch.sinks.runner import Sink, SinkRunner

__all__ = ["Sink", "SinkRunner"]
