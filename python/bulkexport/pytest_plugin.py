"""pytest fixtures for a bulkexport server (entry point `pytest11`):
`bulkexport_server` for the session and `bulkexport` for one test, reset
after it."""
import os

import pytest

from . import BulkExport


def pytest_addoption(parser):
    group = parser.getgroup("bulkexport")
    group.addoption("--bulkexport-fixtures", metavar="FILE", default=None,
                    help="a bulkexport fixtures file (TOML) the server holds at start and after each reset")
    parser.addini("bulkexport_fixtures", "a bulkexport fixtures file, relative to the ini file", default=None)


def _fixtures(config):
    given = config.getoption("--bulkexport-fixtures")
    if given:
        return os.path.abspath(given)
    ini = config.getini("bulkexport_fixtures")
    if ini:
        base = os.path.dirname(str(config.inipath)) if config.inipath else str(config.rootpath)
        return os.path.join(base, ini)
    return None


@pytest.fixture(scope="session")
def bulkexport_server(pytestconfig):
    """One `bulkexport serve` for the whole session."""
    server = BulkExport(fixtures=_fixtures(pytestconfig))
    yield server
    server.stop()


@pytest.fixture
def bulkexport(bulkexport_server):
    """The session's server, reset (to the fixtures) after the test."""
    yield bulkexport_server
    bulkexport_server.reset()
