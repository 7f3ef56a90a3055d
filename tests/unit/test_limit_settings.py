"""``[limits]`` and the ``[server]`` knobs against slow clients: read into settings, each error names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from draas_actors.api.server import ServerLimits
from draas_actors.errors import ConfigError
from draas_actors.security import LimitSettings, parse_network
from draas_actors.settings import load_settings


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "draas.toml"
    path.write_text(text)
    return load_settings(path, environ={})


def test_without_the_tables_the_defaults_apply(tmp_path: Path) -> None:
    settings = load_settings(None, environ={})

    assert settings.security.limits == LimitSettings()
    assert settings.server_limits == ServerLimits()
    assert (LimitSettings().push_rate, LimitSettings().push_burst) == (200.0, 2000)
    assert LimitSettings().push_request_burst == 10


def test_every_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "draas.toml"
    path.write_text(
        "[limits]\nmaxBodyBytes = 65536\nmaxJsonDepth = 5\nmaxMetadataKeys = 16\nmaxMetadataValueLength = 256\n"
        "maxClockSkew = 30\n"
        "pushRate = 50.5\npushBurst = 100\npushRequestBurst = 4\noperatorRate = 20.0\noperatorBurst = 40\n"
        "maxLogBytes = 2048\nmaxLogLines = 30\n"
        "[server]\nchannelTimeout = 12\nconnectionLimit = 50\nmaxHeaderBytes = 8192\nrequestTimeout = 2.5\n"
        "reservedConnections = 8\nconnectionsPerAddress = 16\n"
        '[network]\ntrustedProxies = ["10.0.0.5"]\n'
    )

    settings = load_settings(path, environ={})

    assert settings.security.limits == LimitSettings(
        max_body_bytes=65536, max_json_depth=5, max_metadata_keys=16, max_metadata_value_length=256, max_clock_skew=30,
        push_rate=50.5, push_burst=100, push_request_burst=4, operator_rate=20.0, operator_burst=40,
        max_log_bytes=2048, max_log_lines=30,
    )
    assert settings.server_limits == ServerLimits(
        channel_timeout=12, connection_limit=50, max_header_bytes=8192, max_body_bytes=65536, request_timeout=2.5,
        reserved_connections=8, connections_per_address=16, uncapped=(parse_network("10.0.0.5"),),
    )


def test_waitress_gets_the_server_limits_and_a_body_backstop_above_the_apps_limit() -> None:
    options = ServerLimits(channel_timeout=12, max_body_bytes=65536).waitress_options()

    assert options["channel_timeout"] == 12
    assert options["cleanup_interval"] == 1
    assert options["max_request_body_size"] > 65536
    assert options["max_request_header_size"] == ServerLimits.max_header_bytes


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[limits]\nmaxBodyBytes = 10\n", "limits.maxBodyBytes"),
        ("[limits]\nmaxJsonDepth = 1\n", "limits.maxJsonDepth"),
        ("[limits]\npushRate = 0\n", "limits.pushRate"),
        ("[limits]\npushBurst = 0\n", "limits.pushBurst"),
        ("[limits]\npushRequestBurst = 0\n", "limits.pushRequestBurst"),
        ("[limits]\noperatorBurst = 1.5\n", "limits.operatorBurst"),
        ("[limits]\nmaxMetadataKeys = -1\n", "limits.maxMetadataKeys"),
        ("[limits]\nmaxClockSkew = -1\n", "limits.maxClockSkew"),
        ("[limits]\nburst = 3\n", "limits.burst"),
        ("[server]\nchannelTimeout = 0\n", "server.channelTimeout"),
        ("[server]\nchannelTimeout = 2.5\n", "server.channelTimeout"),
        ("[server]\nmaxHeaderBytes = 100\n", "server.maxHeaderBytes"),
        ("[server]\nrequestTimeout = 0\n", "server.requestTimeout"),
        ("[server]\nreservedConnections = -1\n", "server.reservedConnections"),
        ("[server]\nconnectionsPerAddress = 0\n", "server.connectionsPerAddress"),
    ],
)
def test_a_bad_limit_is_a_config_error_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)

    assert caught.value.field == field
    assert field in caught.value.message
