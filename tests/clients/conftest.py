import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_HELPERS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "clients")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.abspath(CLIENT_HELPERS))

from server import Server  # noqa: E402


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()
