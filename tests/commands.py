"""Helpers for tests of a command's bad input: its main() run in the test's process, its one error paragraph."""


def error_of(main, argv: list[str], capsys) -> str:
    """Run `main(argv)` (returning or exiting with a status); assert exit status 2 and one `error:` paragraph
    without a traceback on stderr, and return that paragraph."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error:") and "Traceback" not in err and err.count("error:") == 1, err
    return err
