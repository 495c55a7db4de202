"""Fixtures of the serving tests (the helpers themselves are in serving_helpers.py)."""

from __future__ import annotations

import pytest
from serving_helpers import export_constant, free_port, live_server


@pytest.fixture
def serving():
    """``with serving(app) as (base_url, server):`` — a real server on 127.0.0.1 for a test."""
    return live_server


@pytest.fixture(scope="session")
def constant_export():
    """``export_constant(path, value)``: exports that say which version answered."""
    return export_constant


@pytest.fixture
def port_pair():
    """Two free 127.0.0.1 ports (REST, gRPC)."""
    return free_port(), free_port()
