"""Mount-path to host-path mapping of the process kubelet."""

import pytest

from devcluster.mounts import PathMap, normalise_mount_path


@pytest.fixture
def pm():
    return PathMap([("/data", "/host/vol"), ("/data/cfg/", "/host/cfg"), ("/dev/termination-log", "/host/term")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/data", "/host/vol"),
        ("/data/", "/host/vol/"),
        ("/data/out.csv", "/host/vol/out.csv"),
        ("--output=/data/x/y.pdf", "--output=/host/vol/x/y.pdf"),
        ("/data/cfg/app.yaml", "/host/cfg/app.yaml"),  # longest prefix wins
        ("/data/cfgs/x", "/host/vol/cfgs/x"),
        ("/database/x", "/database/x"),  # not a path-component boundary
        ("/data.csv", "/data.csv"),
        ("rel/data/x", "rel/data/x"),
        ("a=/data/1,b=/data/cfg/2", "a=/host/vol/1,b=/host/cfg/2"),
        ("--termination-log=/dev/termination-log", "--termination-log=/host/term"),
        ("/dev/termination-log.bak", "/dev/termination-log.bak"),
        ("nothing here", "nothing here"),
    ],
)
def test_apply(pm, value, expected):
    assert pm.apply(value) == expected


def test_single_pass_does_not_rewrite_host_paths():
    pm = PathMap([("/tmp", "/state/pods/ns/p/volumes/tmp"), ("/state", "/elsewhere")])
    assert pm.apply("/tmp/x") == "/state/pods/ns/p/volumes/tmp/x"


def test_root_mount_is_rejected():
    with pytest.raises(ValueError):
        PathMap([("/", "/host")])


def test_normalise():
    assert normalise_mount_path("/a//b/./c/") == "/a/b/c"
    assert normalise_mount_path("a") == "/a"


def test_empty_map_is_identity():
    assert PathMap().apply("/data/x") == "/data/x"
