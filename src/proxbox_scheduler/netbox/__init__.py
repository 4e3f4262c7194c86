"""NetBox awareness: what NetBox's Jobs API says about proxbox syncs, and what the scheduler does about it."""
