"""Real servers on loopback for end-to-end tests (see DESIGN.md, "Real servers for tests").

Each module starts one kind of server and reads back what it received, so tests assert on
what really went over the wire rather than on mocks.
"""
