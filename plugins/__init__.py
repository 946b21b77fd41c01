"""Built-in portal sections, each a plugin using only the public hook contract."""
