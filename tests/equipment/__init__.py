"""The test and load-test equipment itself: the control plane and kubelet stand-in, the load-test
harness, the benchmarks' machinery."""
