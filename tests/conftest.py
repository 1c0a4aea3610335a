"""Shared fixtures: the shared real datasets (tests skip when absent) and a real Label Studio.

The ``label_studio`` fixture starts one real Label Studio server (PyPI ``label-studio``,
SQLite, 127.0.0.1, installed into ``.venv-ls`` by the Makefile) per test session: it
migrates a data directory once, starts a server from a copy of it, and stops the server by
its PID at the end. Tests that use it carry ``LABEL_STUDIO_TESTS`` (or
``LABEL_STUDIO_TESTS_2``) as their marks: ``labelstudio`` and an xdist group, so with
``--dist loadgroup`` each group runs in one worker and a session starts at most two servers,
one per group, from one migrated template (the first worker migrates it under a file lock).
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def crowd_dataset_path(name: str) -> Path:
    path = SHARED_DATA / "crowd" / name
    if not (path / "annotations.csv").is_file():
        pytest.skip(f"shared dataset {name!r} is not available at {path}")
    return path


@pytest.fixture
def crowd_dataset():
    """Load a dataset from ../shared/data/crowd by name, or skip."""
    from galton.connectors import read_crowd_dataset

    return lambda name: read_crowd_dataset(crowd_dataset_path(name))


LABEL_STUDIO_TESTS = [pytest.mark.labelstudio, pytest.mark.xdist_group("labelstudio")]
# the second group (the slow reliability and sync tests) runs beside the first, on its own server
LABEL_STUDIO_TESTS_2 = [pytest.mark.labelstudio, pytest.mark.xdist_group("labelstudio-2")]


@dataclass
class LabelStudioServer:
    url: str
    token: str
    pid: int
    data_dir: Path

    def connector(self, **options):
        from galton.connectors import LabelStudioConnector

        return LabelStudioConnector(self.url, self.token, **options)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """One real Label Studio server for the session (see the module doc).

    For quick local iterations, ``GALTON_TEST_LS_URL`` and ``GALTON_TEST_LS_TOKEN`` point
    the tests at a server you started yourself instead.
    """
    import os

    if os.environ.get("GALTON_TEST_LS_URL") and os.environ.get("GALTON_TEST_LS_TOKEN"):
        yield LabelStudioServer(os.environ["GALTON_TEST_LS_URL"], os.environ["GALTON_TEST_LS_TOKEN"], 0, Path())
        return
    from galton.backend.local_labelstudio import (
        LabelStudioNotFound,
        LocalLabelStudio,
        find_label_studio,
        migrated_template,
    )

    try:
        find_label_studio()
    except LabelStudioNotFound as error:
        pytest.fail(f"{error}")  # make test installs it: a missing server is a broken setup, not a skip
    template, token, password = _shared_template(tmp_path_factory, migrated_template)
    root = tmp_path_factory.mktemp("label-studio")
    data_dir = root / "server"
    shutil.copytree(template, data_dir)
    server = LocalLabelStudio(data_dir=data_dir, token=token, password=password)
    server.start()
    try:
        yield LabelStudioServer(server.url, token, server.pid or 0, data_dir)
    finally:
        server.stop()


def _shared_template(tmp_path_factory, migrated_template) -> tuple[Path, str, str]:
    """One migrated Label Studio data dir for every xdist worker of the run (the first one in
    migrates it under a file lock) and its admin credentials (a 0600 file beside it)."""
    import fcntl
    import json
    import os

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's base dir, above each worker's own
    credentials = shared / "label-studio-credentials.json"
    with open(shared / "label-studio-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if credentials.is_file() and (shared / "label-studio-template" / ".migrated").is_file():
            secret = json.loads(credentials.read_text())
        else:
            secret = {"token": secrets.token_hex(20), "password": secrets.token_urlsafe(16)}
            migrated_template(shared / "label-studio-template", **secret)
            credentials.touch(mode=0o600)
            credentials.write_text(json.dumps(secret))
    return shared / "label-studio-template", secret["token"], secret["password"]
