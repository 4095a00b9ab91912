"""Run control: choices, leases, interrupts and the local stack."""
