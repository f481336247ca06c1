"""Sources of samples: wearables, gateways, recordings, the simulator."""
