"""New files from a few answers: `topology.py` writes the topology `glmctl init` asks about."""
