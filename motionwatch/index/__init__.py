"""The recordings folder: the event index (events.db), event folders, retention and disk space."""
