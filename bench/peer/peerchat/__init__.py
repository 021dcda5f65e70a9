"""A minimal Channels 4 chat that speaks the site's /chat/stream/ protocol (the benchmark's peer)."""
