"""A cluster made of local processes, for load tests against real software: fake GPU model
servers (`model_server.py`), a replica manager (`replicas.py`), a load balancer that queues
like Knative's activator (`balancer.py`), a real Prometheus (`prometheus_server.py`), and an
open-loop load generator (`loadgen.py`). Loopback only."""
