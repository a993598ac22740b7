"""Scaling policies behind one interface (`autoscaler.policy.Policy`), one module each; their
names and `make_policy` are in `autoscaler.policies.catalog`. Nothing is imported here, so a
policy module importing a sibling never runs the catalog (which imports every policy)."""
