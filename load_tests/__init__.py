"""Load tests and benchmarks, run from a checkout and never shipped: `local/` holds the real
processes a load test runs (model-server replicas, the balancer, the open-loop generator, a
Prometheus), `loadtest.py` the loop over them (`python -m load_tests.loadtest`)."""
