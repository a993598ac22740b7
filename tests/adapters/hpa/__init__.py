"""The HPA adapter: floors, plain workloads and the external metrics API."""
