"""The simulator: traces, synthetic workloads, the engine and how a run is scored."""
