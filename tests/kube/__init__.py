"""A faithful fake Kubernetes API server (pods only) and a pod builder, for tests of the Kubernetes daemon."""
