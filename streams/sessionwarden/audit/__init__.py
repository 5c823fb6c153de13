"""Traffic simulation with ground truth, and the audit that checks enforcement against it."""
