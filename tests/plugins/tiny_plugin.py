"""A --plugin file for tests: registers the test doubles ``tiny`` (dataset) and ``tiny-size`` (task)."""

from astrobench.testing import register_test_doubles

register_test_doubles()
