"""Local launcher for the whole stack, Kubernetes manifests and their validation."""
