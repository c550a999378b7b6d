"""The settings object; it lives in the library (``vtex_relay.settings``), imported from here
by the application and by anyone who configured vtex-relay through ``config`` before."""

from vtex_relay.settings import DEFAULT_BASE_URL, AccountSettings, Settings, get_settings

__all__ = ["DEFAULT_BASE_URL", "AccountSettings", "Settings", "get_settings"]
