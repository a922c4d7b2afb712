"""Local Redis servers and clusters on free loopback ports, started and owned by the
tests and the benchmark that use them (never anyone else's Redis)."""
