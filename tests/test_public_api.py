"""The public surface: what ``import aiolog`` offers and nothing else."""

import types

import aiolog


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ names every public attribute, and every name in it exists.

    Subpackages (``aiolog.sinks``, whose modules are private) are folders, not API.
    """
    public = {name for name, value in vars(aiolog).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert set(aiolog.__all__) == public
    for name in aiolog.__all__:
        assert getattr(aiolog, name) is not None


def test_package_is_typed() -> None:
    """py.typed ships with the package, so type checkers use our hints."""
    import pathlib

    assert (pathlib.Path(aiolog.__file__).parent / "py.typed").exists()
