"""What the user sees in a terminal: the headless command line and the Textual app.

Views read the engine only through its events (``latency_tui.core.events``) and the session
model (``latency_tui.core.session``). Textual is imported only by the app's own modules.
"""
