"""Bluetooth wearables through bleak: the adapter, the virtual wearables, the bumble backend."""
