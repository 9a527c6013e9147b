"""`motionwatch tune`: replay a source, chart its motion and advise detection settings."""
