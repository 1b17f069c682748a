"""Hearthside server: all I/O (web app, database, workers, CLI) lives here."""
