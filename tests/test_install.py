"""make env's installer (convcourse/install.py): pip's configuration handed to uv."""

from __future__ import annotations

from convcourse.install import CONSTRAINTS, parse_pip_config, uv_command

LISTED = """\
:env:.find-links='/opt/wheels /srv/more'
global.find-links='/ignored/because/the/variable/wins'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
install.index-url='https://mirror.example/simple'
global.index-url='https://overridden.example/simple'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.timeout='60'
"""


def test_pip_config_is_read_with_pips_precedence_and_constraint_files_left_to_the_command_line():
    assert parse_pip_config(LISTED) == {
        "find-links": ["/opt/wheels", "/srv/more"],
        "extra-index-url": ["file:///opt/pypi/simple", "file:///opt/pypi-more/simple"],
        "index-url": ["https://mirror.example/simple"],
        "cert": ["/etc/ssl/certs/ca-certificates.crt"],
    }
    assert parse_pip_config("") == {}


def test_uv_gets_every_index_and_link_and_the_courses_constraints():
    command = uv_command("/v/bin/python", ["--editable", ".[dev]"], parse_pip_config(LISTED))
    assert command[:3] == ["/v/bin/uv", "pip", "install"]
    pairs = list(zip(command, command[1:]))
    for option, value in [
        ("--python", "/v/bin/python"),
        ("--constraint", str(CONSTRAINTS)),
        ("--index-strategy", "unsafe-best-match"),
        ("--default-index", "https://mirror.example/simple"),
        ("--extra-index-url", "file:///opt/pypi/simple"),
        ("--extra-index-url", "file:///opt/pypi-more/simple"),
        ("--find-links", "/opt/wheels"),
        ("--find-links", "/srv/more"),
    ]:
        assert (option, value) in pairs, (option, value)
    assert "--compile-bytecode" in command and command[-2:] == ["--editable", ".[dev]"]
    assert "/etc/ssl/certs/ca-certificates.crt" not in command and "/etc/xdg/pip/constraints.txt" not in command
