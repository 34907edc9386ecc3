"""Fixtures of the method tests; the helpers live in method_helpers.py (a unique module name:
every test folder has a conftest, and ``from conftest import`` would pick whichever came first)."""

import pytest

from method_helpers import blob_images


@pytest.fixture
def blobs():
    return blob_images(64, size=32)
