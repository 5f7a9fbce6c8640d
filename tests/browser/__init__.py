"""Browser tests: a package, so its conftest is not mistaken for tests/conftest.py."""
