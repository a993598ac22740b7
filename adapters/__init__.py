"""The edges of Leadtime: Prometheus, Knative, HPA, Kubernetes and the simulator."""
