"""Triggers: the ways one run is carried out (http stream, exec command)."""
