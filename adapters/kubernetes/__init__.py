"""What every Kubernetes adapter shares: the list-and-watch cache (`informer.py`) and the
API client built from a kubeconfig or the pod's service account (`api.py`)."""
