"""The in-process test fixture: the distro assembled on in-memory exporters, for tests of a user's app."""
