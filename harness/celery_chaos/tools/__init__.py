"""Tools built on the run: ``repro`` (your app, one fault) and ``audit`` (your settings)."""
