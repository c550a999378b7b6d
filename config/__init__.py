"""Configuration: the one settings object, read from the environment and an optional ``.env``."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
