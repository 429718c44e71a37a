"""The test harness's `free_port`: ports the kernel does not hand out for a bind to port 0."""

from __future__ import annotations

import socket

from tests.conftest import _ephemeral_floor, free_port


def test_free_port_is_below_the_ephemeral_range_and_free() -> None:
    # A port from the kernel's own range could be handed to the test's next port-0 server (a feed server
    # started after the call), and the process meant to bind it would find it taken (seen in CI: exit 2).
    ports = [free_port() for _ in range(50)]
    assert all(1024 <= port < _ephemeral_floor() for port in ports)
    assert len(set(ports)) == 50
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))
