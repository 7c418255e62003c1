"""Model back-ends (open_clip, hub, captioners, the bundled stand-in) behind one registry."""
