"""Is this machine ready for glmctl? `glmctl doctor`'s checks (pure, `checks.py`), the probe
that gathers their facts (`probe.py`), and which extra provides a module (`extras.py`)."""
