"""What the Kubernetes adapters share: leader election by Leases."""
