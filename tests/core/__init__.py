"""The core: configuration, the control loop and its fleet arrays, the forecasting shell,
sharding, the HTTP API and status page — no adapter but the simulator behind the ports."""
