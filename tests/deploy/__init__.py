"""The Helm chart, rendered and linted, and installed on the test control plane."""
