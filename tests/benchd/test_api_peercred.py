"""benchd.peercred: the requester is what the kernel says about the connection."""
from __future__ import annotations

import os
import socket

import pytest

from benchd.errors import Forbidden
from benchd.peercred import peer_cred, user_name


def test_peer_cred_of_a_unix_socket_is_the_connecting_process() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        cred = peer_cred(a)
    assert (cred.pid, cred.uid, cred.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert cred.user == user_name(os.getuid())


def test_non_unix_sockets_have_no_identity() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(Forbidden, match="Unix socket"):
            peer_cred(s)
    with pytest.raises(Forbidden):
        peer_cred(None)


def test_user_name_falls_back_to_the_number_for_uids_without_an_account() -> None:
    assert user_name(0) == "root"
    assert user_name(2_000_000_123) == "2000000123"
