"""Loaded by every Python process whose PYTHONPATH starts with this folder (the offline notebook stage of
scripts/run_tests.py): connections and name lookups beyond this machine fail, so a notebook's kernel behaves
as on Binder after a failed MNIST download (the other stages' pytest processes use pytest-socket, see
pyproject.toml; kernels are not pytest processes). Loopback stays open: the kernel talks to nbval over 127.0.0.1.
"""
import ipaddress
import socket


class NetworkBlocked(OSError):
    """A process of the offline stage tried to reach the network."""


def _is_local(host) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guard(real, name_of):
    def guarded(*args, **kwargs):
        target = name_of(*args)
        if not _is_local(target):
            raise NetworkBlocked(f"network access blocked (offline stage): {real.__name__} to {target!r}")
        return real(*args, **kwargs)

    return guarded


def _host(address):
    return None if isinstance(address, (str, bytes)) else address[0]  # AF_UNIX paths are local


socket.socket.connect = _guard(socket.socket.connect, lambda self, address: _host(address))
socket.socket.connect_ex = _guard(socket.socket.connect_ex, lambda self, address: _host(address))
socket.getaddrinfo = _guard(
    socket.getaddrinfo, lambda host, *rest: host.decode() if isinstance(host, bytes) else host
)
