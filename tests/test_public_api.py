"""The public surface: what ``import aiolog`` offers and nothing else."""

import aiolog


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ names every public attribute, and every name in it exists."""
    public = {name for name in vars(aiolog) if not name.startswith("_")}
    assert set(aiolog.__all__) == public
    for name in aiolog.__all__:
        assert getattr(aiolog, name) is not None


def test_package_is_typed() -> None:
    """py.typed ships with the package, so type checkers use our hints."""
    import pathlib

    assert (pathlib.Path(aiolog.__file__).parent / "py.typed").exists()
