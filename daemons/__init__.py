"""Daemons that watch a platform (Docker, Kubernetes) and push status updates to the control plane."""
