"""`python -m publisher.cli`, as the old `publisher/cli.py` module ran."""

from publisher.cli import main

# Guarded: a process spawned by multiprocessing (uvicorn's API workers) imports this module
# again as `__mp_main__`, and must not run the command a second time.
if __name__ == "__main__":
    main(prog_name="publisher")
