import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_CLIENTS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "..", "shared", "clients")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.abspath(SHARED_CLIENTS))

from server import Server  # noqa: E402


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()
