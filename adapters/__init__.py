"""Every source of samples: wearables (BLE), the simulator, gateways, recordings."""
