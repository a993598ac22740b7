"""The whole service as it runs: processes, faults, untrusted input."""
