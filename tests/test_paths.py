"""Paths.

Nothing outside the scanned root is listed, nothing is written outside the cache, the app's allowed-roots
check cannot be walked around, and no path reaches a shell.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from PIL import Image

from vlexplore import paths
from vlexplore.cache import store_for
from vlexplore.errors import ConfigError, PathNotAllowedError
from vlexplore.images import make_thumbnails, scan_folder, thumbnail

REPO = Path(__file__).resolve().parent.parent


def _image(path: Path, colour=(10, 120, 200)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 9), colour).save(path)
    return path


@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    """``base/root`` (scanned) with every kind of link that leaves it; ``base/secret`` and ``base/root2`` beside it."""
    base = tmp_path / "base"
    root, secret, root2 = base / "root", base / "secret", base / "root2"
    _image(root / "a" / "inside.png")
    _image(root / "b" / "deep" / "inside2.png", (200, 10, 10))
    _image(secret / "secret.png", (1, 2, 3))
    _image(root2 / "sibling.png", (4, 5, 6))  # a prefix trick: /base/root2 starts with /base/root
    (root / "a" / "abs_out.png").symlink_to(secret / "secret.png")
    (root / "a" / "rel_out.png").symlink_to(Path("..") / ".." / "secret" / "secret.png")
    (root / "a" / "sibling.png").symlink_to(Path("..") / ".." / "root2" / "sibling.png")
    (root / "a" / "dir_out").symlink_to(secret, target_is_directory=True)
    (root / "a" / "hop1.png").symlink_to("hop2.png")  # a chain that ends outside
    (root / "a" / "hop2.png").symlink_to(secret / "secret.png")
    (root / "a" / "dotdot_in.png").symlink_to(
        Path("..") / "b" / "deep" / "inside2.png"
    )  # '..' that stays inside
    (root / "b" / "up").symlink_to(Path("..") / "a", target_is_directory=True)  # a second way into a/
    (root / "b" / "loop").symlink_to(root, target_is_directory=True)
    return {"base": base, "root": root, "secret": secret, "root2": root2}


def _inside(path: str | Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


# --------------------------------------------------------------------------- scanning


@pytest.mark.parametrize("spelling", ["plain", "dotdot", "via-symlink", "relative"])
def test_scan_never_lists_a_path_outside_the_root(tree, spelling, monkeypatch):
    root = tree["root"]
    if spelling == "dotdot":
        root = root / "a" / ".." / ".." / "root"
    elif spelling == "via-symlink":
        (tree["base"] / "alias").symlink_to(root, target_is_directory=True)
        root = tree["base"] / "alias"
    elif spelling == "relative":
        monkeypatch.chdir(tree["root"] / "a")
        root = Path("..") / ".." / "root"
    c = scan_folder(root)
    assert sorted(c.items["relpath"]) == ["a/dotdot_in.png", "a/inside.png", "b/deep/inside2.png"]
    for relpath, path in zip(c.items["relpath"], c.items["path"]):
        assert _inside(path, tree["root"]), path
        assert not relpath.startswith("/")
        assert ".." not in relpath.split("/")
    reasons = dict(zip(c.skipped["relpath"], c.skipped["reason"]))
    for name in ("abs_out.png", "rel_out.png", "sibling.png", "dir_out", "hop1.png", "hop2.png"):
        assert "outside the folder" in reasons[f"a/{name}"], name


def test_no_content_from_outside_the_root_is_fingerprinted(tree):
    from vlexplore.images import fingerprint_file

    c = scan_folder(tree["root"])
    outside = {
        fingerprint_file(tree["secret"] / "secret.png"),
        fingerprint_file(tree["root2"] / "sibling.png"),
    }
    assert outside.isdisjoint(c.fingerprints)


# --------------------------------------------------------------------------- writing


def _snapshot(*folders: Path) -> dict[str, int]:
    out = {}
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            for f in files:
                p = os.path.join(dirpath, f)
                out[p] = os.lstat(p).st_mtime_ns
    return out


def test_thumbnails_are_written_only_under_the_cache_folder(tree, tmp_path):
    cache = tmp_path / "cache"
    before = _snapshot(tree["base"])
    c = scan_folder(tree["root"])
    thumbs = make_thumbnails(c, size=16, cache_dir=cache)
    assert set(thumbs) == set(c.items["relpath"])
    assert _snapshot(tree["base"]) == before  # nothing written, touched or left beside the images
    written = [Path(p) for p in _snapshot(cache)]
    assert written
    assert all(p.parent == cache / "thumbs" and p.suffix == ".jpg" for p in written)


@pytest.mark.parametrize(
    "relpath", ["../secret/secret.png", "/etc/passwd", "a/../../secret/secret.png", "a/dir_out"]
)
def test_thumbnail_serves_only_items_of_the_collection(tree, tmp_path, relpath):
    c = scan_folder(tree["root"])
    with pytest.raises(ConfigError, match="not an image of the collection"):
        thumbnail(c, relpath, cache_dir=tmp_path)


@pytest.mark.parametrize("namespace", ["../../escape", "/etc/passwd", "a/../../b", "..", ".", ""])
def test_cache_namespaces_stay_inside_the_cache_folder(tmp_path, namespace):
    store = store_for(tmp_path, namespace)
    assert store.directory.parent == tmp_path
    assert store.directory.name not in ("", ".", "..")


# --------------------------------------------------------------------------- the allowed roots (vlexplore/paths.py)


@pytest.fixture
def allowed(tree) -> list[Path]:
    return [paths.resolve_path(tree["root"])]


@pytest.mark.parametrize("path", ["", "a", "b/deep", "a/../b", "b/up", "./a/./", "b/loop/a"])
def test_check_folder_accepts_folders_inside_the_roots(tree, allowed, path):
    got = paths.check_folder(str(tree["root"] / path), allowed)
    assert got.is_relative_to(allowed[0])
    assert got == Path(os.path.realpath(tree["root"] / path))


@pytest.mark.parametrize(
    "path", ["..", "a/../..", "../root2", "../secret", "a/dir_out", "../root/../secret", "/"]
)
def test_check_folder_refuses_anything_resolving_outside(tree, allowed, path):
    with pytest.raises(PathNotAllowedError, match="outside the folders this app may read"):
        paths.check_folder(str(tree["root"] / path) if path != "/" else "/", allowed)


def test_prefix_tricks_do_not_pass(tree):
    assert not paths.is_within(paths.resolve_path(tree["root2"]), [paths.resolve_path(tree["root"])])
    assert not paths.is_within(Path("/home/user2"), [Path("/home/user")])
    assert paths.is_within(Path("/home/user/x"), [Path("/home/user")])


def test_relative_paths_resolve_against_the_given_base(tree, allowed):
    assert paths.check_folder("a", allowed, base=tree["root"]) == allowed[0] / "a"
    with pytest.raises(PathNotAllowedError):
        paths.check_folder("../secret", allowed, base=tree["root"])


def test_a_root_given_through_a_symlink_is_resolved(tree):
    (tree["base"] / "alias").symlink_to(tree["root"], target_is_directory=True)
    allowed = paths.allowed_roots(env={paths.ROOTS_ENV: str(tree["base"] / "alias")})
    assert allowed[0] == paths.resolve_path(tree["root"])
    assert paths.check_folder(str(tree["root"] / "a"), allowed)


def test_browsing_shows_no_link_out_and_no_parent_above_the_root(tree, allowed):
    assert paths.subfolders(allowed[0] / "a", allowed) == []  # dir_out leads outside: hidden
    assert paths.subfolders(allowed[0] / "b", allowed) == ["deep", "loop", "up"]
    assert paths.parent_within(allowed[0], allowed) is None
    assert paths.parent_within(allowed[0] / "a", allowed) == allowed[0]


@pytest.mark.parametrize(
    "text",
    ["bad\x00byte", "x" * 300, "/".join(["y" * 200] * 30)],
    ids=["nul-byte", "name-too-long", "path-too-long"],
)
def test_unusable_folder_text_is_a_config_error_not_a_traceback(allowed, text):
    with pytest.raises(ConfigError):
        paths.check_folder(str(allowed[0] / text), allowed)


@pytest.mark.parametrize("text", ["bad\x00byte", "x" * 300, "/".join(["y" * 200] * 30), "", "   "])
def test_scan_folder_turns_unusable_paths_into_config_errors(tmp_path, text):
    with pytest.raises(ConfigError):
        scan_folder(str(tmp_path / text) if text.strip() else text)


def test_outside_message_names_neither_the_resolved_path_nor_the_roots(tree, allowed):
    for text in ("a/dir_out", "../secret", "b/../../secret"):
        with pytest.raises(PathNotAllowedError) as info:
            paths.check_folder(text, allowed, base=tree["root"])
        message = str(info.value)
        assert "outside the folders this app may read" in message
        assert repr(text) in message
        assert str(tree["secret"]) not in message, message
        assert str(tree["base"]) not in message, message
        assert "resolves to" not in message


# --------------------------------------------------------------------------- bad roots configuration fails closed


@pytest.mark.parametrize("home", ["/", "", "   ", "/..", "missing", "a-file"])
def test_a_home_that_is_slash_empty_or_not_a_folder_is_no_default_root(tmp_path, home):
    (tmp_path / "a-file").write_text("x")
    value = str(tmp_path / home) if home in ("missing", "a-file") else home
    env = {"HOME": value}
    assert paths.allowed_roots(env) == [paths.DEMO_DIR.resolve()]
    path, note = paths.home_root(env)
    assert path is None
    assert "not an allowed root" in note


def test_a_home_folder_is_a_default_root(tmp_path):
    assert paths.allowed_roots({"HOME": str(tmp_path)}) == [paths.DEMO_DIR.resolve(), tmp_path.resolve()]
    assert paths.home_root({"HOME": str(tmp_path)}) == (tmp_path.resolve(), None)


@pytest.mark.parametrize(
    "env",
    [
        {paths.ROOTS_ENV: "/"},
        {paths.ROOTS_ENV: "/tmp/.."},
        {paths.ROOTS_ENV: f"{{tmp}}{os.pathsep}/"},
        {paths.ROOTS_ENV: "{tmp}", paths.FOLDER_ENV: "/"},
        {paths.FOLDER_ENV: "//", "HOME": "{tmp}"},
    ],
    ids=["slash", "dotdot-to-slash", "one-of-two", "start-folder", "start-folder-alone"],
)
def test_the_file_system_root_is_refused_as_a_root(tmp_path, env):
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    with pytest.raises(ConfigError, match="file-system root"):
        paths.allowed_roots(env)


@pytest.mark.parametrize("secret", ["/", ["/"], [".", "/"]])
def test_the_file_system_root_is_refused_in_the_roots_secret(secret, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="file-system root"):
        paths.allowed_roots({}, secrets_roots=secret)


def test_a_start_folder_that_is_slash_is_refused():
    with pytest.raises(ConfigError, match="file-system root"):
        paths.startup_folder({paths.FOLDER_ENV: "/"})


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "bundled"), ("  ", "bundled"), (" /m/clip/ ", "/m/clip/")]
)
def test_the_start_up_model_defaults_to_bundled(value, expected):
    env = {} if value is None else {paths.MODEL_ENV: value}
    assert paths.startup_model(env) == expected


@pytest.mark.parametrize("value", [":", "::", "", "  ", f" {os.pathsep} "])
def test_roots_variable_set_without_a_folder_is_an_error(value, tmp_path):
    with pytest.raises(ConfigError, match="names no folder"):
        paths.allowed_roots({paths.ROOTS_ENV: value, "HOME": str(tmp_path)}, secrets_roots=[str(tmp_path)])


@pytest.mark.parametrize("secret", [5, 1.5, True, [1, 2], ["ok", 3], {"a": "b"}])
def test_roots_secret_of_the_wrong_type_is_an_error(secret):
    with pytest.raises(ConfigError, match="must be a folder path or a list of folder paths"):
        paths.secret_roots({"roots": secret})
    with pytest.raises(ConfigError):
        paths.allowed_roots({}, secrets_roots=secret)


@pytest.mark.parametrize("secret", ["", [], [" "]])
def test_roots_secret_without_a_folder_is_an_error(secret):
    with pytest.raises(ConfigError, match="names no folder"):
        paths.allowed_roots({}, secrets_roots=paths.secret_roots({"roots": secret}))


@pytest.fixture
def secrets_file(tmp_path):
    """A real ``st.secrets`` reading ``tmp_path/secrets.toml`` (written by the test)."""
    from streamlit import config
    from streamlit.runtime.secrets import Secrets

    path = tmp_path / "secrets.toml"
    before = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(path)])
    try:
        yield path, Secrets
    finally:
        config.set_option("secrets.files", before)


def test_secrets_file_missing_means_no_secret(secrets_file):
    _path, Secrets = secrets_file
    assert paths.secret_roots(Secrets()) is None


@pytest.mark.parametrize(
    "content",
    [b'roots = ["/data"\n', b"roots = ", b"[unclosed", b'roots = "\xff\xfe"'],
    ids=["unclosed-list", "no-value", "bad-table", "not-utf8"],
)
def test_an_invalid_or_unreadable_secrets_file_is_an_error(secrets_file, content, tmp_path):
    path, Secrets = secrets_file
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="secrets file cannot be"):
        paths.allowed_roots({"HOME": str(tmp_path)}, secrets=Secrets())


def test_secrets_file_roots(secrets_file, tmp_path):
    path, Secrets = secrets_file
    path.write_text(f"roots = [{str(tmp_path)!r}]\n")
    assert paths.allowed_roots({}, secrets=Secrets()) == [tmp_path.resolve()]
    path.write_text("roots = 5\n")
    with pytest.raises(ConfigError, match="must be a folder path"):
        paths.allowed_roots({}, secrets=Secrets())


# --------------------------------------------------------------------------- no shell


SHELL_PATTERNS = re.compile(
    r"\bsubprocess\b|\bos\.(system|popen|exec\w*|spawn\w*|posix_spawn\w*)\b|shell\s*=\s*True|\bpty\.spawn\b"
    r"|(?<![\w.])(eval|exec)\s*\("
)


def _sources() -> list[Path]:
    files = [REPO / "app.py"] if (REPO / "app.py").exists() else []
    for folder in ("vlexplore", "ui", "views", "pages"):
        files += sorted((REPO / folder).rglob("*.py"))
    return files


def test_no_code_path_reaches_a_shell_or_eval():
    assert _sources()
    hits = [
        f"{p.relative_to(REPO)}:{i}: {line.strip()}"
        for p in _sources()
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if SHELL_PATTERNS.search(line.split("#", 1)[0])
    ]
    assert hits == []
