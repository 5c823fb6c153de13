"""How the benchmark driver reads a child process's result from its standard output."""

from __future__ import annotations

from bench.common import child_result

# What the bare faust agent printed in a CI run: its worker's spinner hid and showed the cursor
# (with a backspace between) on the line that then carried the result.
FAUST_STDOUT = (
    "+ƒaµS† v0.15.3+-----------+\n| id | bench-faust-6416df |\n+-------+\n"
    '\x1b[?25l\x08\x1b[?25h{"events":5000,"seconds":0.39,"rate":12574.3}\n\n'
)


def test_the_result_is_found_behind_terminal_control_codes() -> None:
    assert child_result(FAUST_STDOUT) == {"events": 5000, "seconds": 0.39, "rate": 12574.3}


def test_the_last_json_object_line_wins() -> None:
    assert child_result('{"a": 1}\nprogress\n{"a": 2}\ndone\n') == {"a": 2}


def test_no_json_object_line_means_no_result() -> None:
    assert child_result("starting\n[1, 2]\nstopped\n") is None
