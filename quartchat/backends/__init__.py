"""Where the chat's shared state lives: the seams in :mod:`.base`, and their
implementations side by side (the embedded default beside Redis)."""
