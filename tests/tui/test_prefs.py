"""Key remapping read from keys.toml, and a broken file that must not stop the app."""

from __future__ import annotations

from latency_tui.tui.prefs import load_keymap


def test_keymap_from_keys_toml(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('[keys]\nrun = "R"\nquit = "q,ctrl+q"\n')
    assert load_keymap(path) == {"run": "R", "quit": "q,ctrl+q"}


def test_missing_or_broken_keymap_is_empty(tmp_path, capsys):
    assert load_keymap(tmp_path / "none.toml") == {}
    broken = tmp_path / "keys.toml"
    broken.write_text("[keys\nrun = ")
    assert load_keymap(broken) == {}
    assert "ignoring" in capsys.readouterr().err
