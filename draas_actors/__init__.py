"""draas-actors: a monitor and supervisor for service instances, one actor per instance."""

__version__ = "0.1.0"
