"""The embedded survey simulator: population, photometry tables, presets, batched renderer."""
