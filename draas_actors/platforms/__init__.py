"""What talks to an OS, a Docker engine or a Kubernetes API on behalf of instance actors."""
