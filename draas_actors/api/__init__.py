"""The HTTP layer: a thin falcon app over ``ControlPlane``."""
