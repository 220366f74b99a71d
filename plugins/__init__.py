"""dijkwacht's built-in detectors.

Each module is a plugin registered through the `dijkwacht` entry-point group, exactly as a
third-party plugin would be; nothing in the core imports them.
"""
