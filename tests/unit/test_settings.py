"""Settings: read and checked in one place; a bad value is one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from terminology.settings import Settings, SettingsError, env_name, settings_help

from ..conftest import free_port

REPO = Path(__file__).resolve().parents[2]
VARIABLES = [env_name(f) for f in fields(Settings)]


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("TX_PORT", "abc", "expected an integer"),
    ("TX_PORT", "70000", "expected a number from 1 to 65535"),
    ("TX_WORKERS", "0", "expected a number of at least 1"),
    ("TX_THREADS", "four", "expected an integer"),
    ("TX_REQUEST_TIME_LIMIT", "soon", "expected a number"),
    ("TX_SERVER", "uwsgi", "expected one of granian, gunicorn"),
    ("TX_LOG_LEVEL", "loud", "expected one of debug, info, warning, error"),
    ("TX_METRICS", "maybe", "expected true or false"),
    ("TX_RESPONSE_CACHE_BYTES", "-1", "expected a number of at least 0"),
])
def test_each_bad_setting_names_its_variable_and_what_it_expects(
        variable: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}=") and expected in message
    assert "\n" not in message


def test_good_values_of_every_kind_are_read() -> None:
    s = Settings.from_env({"TX_PORT": "9000", "TX_REQUEST_TIME_LIMIT": "2.5",
                           "TX_METRICS": "off", "TX_CPT_DATABASES": f"a.db{os.pathsep}b.db",
                           "TX_CACHE_DIR": "/tmp/x", "TX_PID_FILE": "", "TX_HOST": "0.0.0.0"})
    assert (s.port, s.request_time_limit, s.metrics) == (9000, 2.5, False)
    assert s.cpt_databases == [Path("a.db"), Path("b.db")]
    assert (s.cache_dir, s.pid_file, s.host) == (Path("/tmp/x"), None, "0.0.0.0")


def test_a_secret_setting_never_appears_in_the_settings_repr_or_help() -> None:
    s = Settings(admin_token="s3cret-value")
    assert "s3cret" not in repr(s)
    assert "s3cret" not in settings_help()
    assert s.admin_token == "s3cret-value"


@pytest.mark.parametrize(("variable", "value", "line"), [
    ("TX_PORT", "abc", "error: TX_PORT='abc': expected an integer (TCP port of the FHIR API)"),
    ("TX_SERVER", "uwsgi", "error: TX_SERVER='uwsgi': expected one of granian, gunicorn"),
    ("TX_METRICS", "maybe", "error: TX_METRICS='maybe': expected true or false "
                            "(serve Prometheus metrics at GET /metrics)"),
])
def test_serve_with_a_bad_variable_exits_2_with_one_line_and_no_traceback(
        variable: str, value: str, line: str) -> None:
    run = subprocess.run([sys.executable, "-m", "terminology.cli", "serve"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, variable: value})
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [line]
    assert run.stdout == ""


def test_a_bad_flag_value_is_checked_like_its_variable() -> None:
    run = subprocess.run([sys.executable, "-m", "terminology.cli", "serve", "--workers", "0",
                          "--port", str(free_port())],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip() == ("error: TX_WORKERS=0: expected a number of at least 1 "
                                  "(worker processes (content is loaded once, before forking))")


def test_serve_help_lists_every_setting_with_its_variable_and_default() -> None:
    run = subprocess.run([sys.executable, "-m", "terminology.cli", "serve", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    lines = {line.split()[0]: line for line in run.stdout.splitlines()
             if line.strip().startswith("TX_")}
    assert sorted(lines) == sorted(VARIABLES)
    assert "[default: 8080]" in lines["TX_PORT"]
    assert "[default: granian]" in lines["TX_SERVER"]


def test_readme_lists_every_setting() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [v for v in VARIABLES if f"`{v}`" not in readme]
    assert missing == [], "add them to README.md (python -m terminology.settings prints the table)"
