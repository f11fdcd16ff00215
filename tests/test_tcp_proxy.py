"""The tests' loopback TCP proxy (tests/support/tcp_proxy.py) leaves nothing behind.

A transport its loop still holds when the loop stops is found by the garbage collector later,
in whichever test runs then, where pytest reports it as an error of that unrelated test."""

from __future__ import annotations

import contextlib
import gc
import socket
import warnings

from tests.support.tcp_proxy import Mode, TcpProxy

ROUNDS = 6  # stops of a proxy whose clients have just connected; each round raced before
CLIENTS = 3  # connected right before each stop


def test_stop_right_after_clients_connected_leaves_no_socket_to_the_collector() -> None:
    gc.collect()
    clients: list[socket.socket] = []
    # The upstream is a listener nobody accepts on: connections wait in the kernel's backlog.
    with socket.create_server(("127.0.0.1", 0)) as target:
        try:
            for round_ in range(ROUNDS):
                proxy = TcpProxy(target.getsockname()[1]).start()
                if round_ % 2:
                    proxy.set_mode(Mode.BLACKHOLE)  # handlers held, waiting for a mode change
                for _ in range(CLIENTS):
                    clients.append(socket.create_connection(("127.0.0.1", proxy.port), 5))
                proxy.stop()  # some connections are accepted by now, some not yet handled
        finally:
            for client in clients:
                client.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_a_stopped_proxy_cut_its_connections() -> None:
    """stop() resets every connection it held: a client sees its connection end."""
    with socket.create_server(("127.0.0.1", 0)) as target:
        proxy = TcpProxy(target.getsockname()[1]).start()
        proxy.set_mode(Mode.BLACKHOLE)
        with socket.create_connection(("127.0.0.1", proxy.port), 5) as client:
            client.sendall(b"held")
            proxy.stop()
            with contextlib.suppress(ConnectionResetError):  # the RST a stopped proxy sends
                assert client.recv(1) == b""
