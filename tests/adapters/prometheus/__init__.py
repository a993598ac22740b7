"""The Prometheus source against a real Prometheus (and its pure parts)."""
