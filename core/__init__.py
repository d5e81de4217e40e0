"""The measuring engine of latency-tui: everything that measures, nothing that draws.

Data flows one way through the modules named here:
preset (``presets``) -> run plan (``plan``) -> engine (``backends``, ``runner``, ``timing``)
-> events (``events``) -> statistics (``stats``) -> session JSON (``session``) -> views (``tui``).

Nothing in this package imports Textual, and torch is imported only where a model is loaded,
so that ``latency-tui --help`` stays fast.
"""

__version__ = "0.1.0"
