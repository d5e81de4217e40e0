"""keys.toml as read: its [keys] entries with their lines, and what is wrong with the file
itself (with the line TOML gives) instead of a silent nothing."""

from __future__ import annotations

from latency_tui.tui.prefs import load_keymap


def test_keymap_from_keys_toml(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('# my keys\n[keys]\nrun = "R"\n"quit" = "q,ctrl+q"\n')
    keys = load_keymap(path)
    assert keys.path == path and keys.problems == []
    assert keys.entries == {"run": "R", "quit": "q,ctrl+q"}
    assert keys.lines == {"run": 3, "quit": 4}


def test_no_file_is_no_entries_and_no_problem(tmp_path):
    keys = load_keymap(tmp_path / "none.toml")
    assert keys.entries == {} and keys.problems == []


def test_broken_toml_is_a_problem_with_its_line(tmp_path):
    broken = tmp_path / "keys.toml"
    broken.write_text('[keys]\nrun = "R"\nquit = \n')
    keys = load_keymap(broken)
    assert keys.entries == {}
    [(line, problem)] = keys.problems
    assert line == 3
    assert problem.startswith("not valid TOML: ") and "using the default keys" in problem
    assert "(at line" not in problem  # the line is given once, by the notice


def test_entries_outside_keys_and_other_tables_are_problems(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('run = "R"\n\n[key]\nquit = "x"\n')
    keys = load_keymap(path)
    assert keys.entries == {}
    assert keys.problems == [(1, "run is outside the [keys] table; put it under [keys]"),
                             (3, "[key] is not read (only [keys] is)")]


def test_unreadable_files_are_problems(tmp_path):
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[keys]\nrun = "\xe9"\n')
    assert "not UTF-8" in load_keymap(latin).problems[0][1]
    huge = tmp_path / "huge.toml"
    huge.write_text("#" * 70000)
    assert "larger than 64 KB" in load_keymap(huge).problems[0][1]
    table = tmp_path / "table.toml"
    table.write_text('keys = "r"\n')
    assert load_keymap(table).problems == [(1, "keys must be a table: [keys]")]
