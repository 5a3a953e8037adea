"""``python -m splice.perf [OPTIONS]`` is ``splice perf [OPTIONS]`` (one command, one vocabulary)."""

if __name__ == "__main__":
    import sys

    from splice.cli import main

    main(["perf", *sys.argv[1:]])
