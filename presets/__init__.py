"""Built-in presets, shipped as package data (``*.toml``)."""
