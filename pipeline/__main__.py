"""`python -m pipeline`: the orchestrator's command line (pipeline.cli)."""
from pipeline.cli import main

main(prog_name="python -m pipeline")
