"""Who may use the dashboard: loopback, HTTP Basic, CSRF tokens; and its SVG chart."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from railyard.core.errors import ConfigError
from railyard.ops.svg_chart import line_chart
from railyard.ops.web_auth import CsrfTokens, basic_auth_ok, is_loopback, require_password_off_loopback


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),  # noqa: S104 (the address under test)
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert expected == is_loopback(host)


def test_a_password_is_required_off_loopback_only() -> None:
    require_password_off_loopback("127.0.0.1", None)
    require_password_off_loopback("0.0.0.0", "long-random")  # noqa: S104
    with pytest.raises(ConfigError, match="RAILYARD_WEB_PASSWORD"):
        require_password_off_loopback("0.0.0.0", None)  # noqa: S104
    with pytest.raises(ConfigError, match="RAILYARD_WEB_PASSWORD"):
        require_password_off_loopback("0.0.0.0", "")  # noqa: S104


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (_basic("admin", "right"), True),
        (_basic("anyone", "right"), True),
        (_basic("admin", "wrong"), False),
        (_basic("admin", ""), False),
        ("Basic not-base64!", False),
        ("Bearer right", False),
        (None, False),
        ("Basic " + base64.b64encode(b"right").decode(), False),  # no colon: no password given
    ],
)
def test_basic_auth(header: str | None, expected: bool) -> None:
    assert expected == basic_auth_ok(header, "right")


def test_csrf_tokens_accept_only_their_own() -> None:
    tokens, other = CsrfTokens(), CsrfTokens()
    assert (True, False, False, False) == (
        tokens.valid(tokens.token),
        tokens.valid(other.token),
        tokens.valid(""),
        tokens.valid(None),
    )


def test_line_chart_draws_points_in_time_order_and_escapes_its_text() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    svg = line_chart([(t + timedelta(days=1), 20.0), (t, 10.0)], "size of <db>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "size of &lt;db&gt;" in svg
    assert 'points="40.0,80.0 600.0,40.0"' in svg  # the older, smaller point first: left and lower
    assert "no data" in line_chart([], "empty")
