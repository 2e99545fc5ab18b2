"""The one error the plugin shows a person."""


class PluginError(Exception):
    """Something the person at the terminal must read: printed as it is, exit status 1."""
