"""The actors: one per file. They talk only through the messages in ``draas_actors.messages``."""
