"""Leadtime as a Knative PodAutoscaler class on the test control plane, and its pure rules."""
