"""Ray Serve deployments for the AI stages, the model client and the local model simulator."""
