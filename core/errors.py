"""The two kinds of failure the user can meet, kept apart because they end differently.

``UserError`` is bad input (a preset field, a model spec, an argument): the command line prints
its one-line message and exits 2 before anything is written. ``ConfigurationError`` is a
configuration that failed while running (the model raised, a copy died): the engine records it
on that configuration's result and goes on with the others.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input; the message names the file, field or argument at fault."""


class ConfigurationError(Exception):
    """One configuration of a run could not be measured."""
