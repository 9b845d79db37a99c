"""Environment, volume and command-line resolution of the process kubelet (API faked by a dict)."""

import base64

import pytest

from devcluster.podenv import ContainerConfigError, PodResolver, VolumeError, field_ref_value, launch_spec

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
    "spec": {"nodeName": "devcluster", "serviceAccountName": "default"},
    "status": {},
}


def b64(s):
    return base64.b64encode(s.encode()).decode()


OBJECTS = {
    ("Secret", "ns", "creds"): {"data": {"token": b64("s3cr3t"), "user": b64("bob")}},
    ("ConfigMap", "ns", "cfg"): {"data": {"mode": "fast", "bad-key!": "x"}},
    ("PersistentVolumeClaim", "ns", "out"): {"metadata": {"name": "out"}},
}


def resolver(tmp_path, pod=None):
    return PodResolver(
        pod or POD,
        tmp_path / "state",
        tmp_path / "state/pods/ns/p",
        lambda kind, ns, name: OBJECTS.get((kind, ns, name)),
    )


def test_env_value_from_and_expansion(tmp_path):
    c = {
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}},
            {"name": "ALL", "value": "$(POD).$(NS):$(MODE)"},
        ]
    }
    assert resolver(tmp_path).env(c) == {"TOKEN": "s3cr3t", "MODE": "fast", "POD": "p", "NS": "ns", "ALL": "p.ns:fast"}


def test_env_from_with_prefix_skips_invalid_keys(tmp_path):
    c = {
        "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "DB_"}, {"configMapRef": {"name": "cfg"}}],
        "env": [{"name": "DB_user", "value": "override"}],
    }
    assert resolver(tmp_path).env(c) == {"DB_token": "s3cr3t", "DB_user": "override", "mode": "fast"}


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"secretKeyRef": {"name": "missing", "key": "k"}}, 'secret "missing" not found'),
        ({"secretKeyRef": {"name": "creds", "key": "nokey"}}, "couldn't find key nokey in Secret ns/creds"),
        ({"configMapKeyRef": {"name": "missing", "key": "k"}}, 'configmap "missing" not found'),
    ],
)
def test_missing_references_are_config_errors(tmp_path, ref, message):
    with pytest.raises(ContainerConfigError, match=message):
        resolver(tmp_path).env({"env": [{"name": "X", "valueFrom": ref}]})


def test_field_refs():
    assert field_ref_value(POD, "metadata.labels['app']") == "x"
    assert field_ref_value(POD, "spec.nodeName") == "devcluster"
    assert field_ref_value(POD, "status.podIP") == "127.0.0.1"
    with pytest.raises(ContainerConfigError):
        field_ref_value(POD, "spec.bogus")


def test_volumes_and_launch_spec(tmp_path):
    pod = dict(
        POD,
        spec=dict(
            POD["spec"],
            volumes=[
                {"name": "out", "persistentVolumeClaim": {"claimName": "out"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "mode", "path": "sub/mode.txt"}]}},
            ],
        ),
    )
    r = resolver(tmp_path, pod)
    vols = r.setup_volumes()
    state = tmp_path / "state"
    assert vols["out"] == str(state / "volumes/ns/out")
    assert (state / "volumes/ns/out").is_dir()
    assert (state / "pods/ns/p/volumes/scratch").is_dir()
    assert (state / "pods/ns/p/volumes/conf/sub/mode.txt").read_text() == "fast"

    container = {
        "name": "main",
        "command": ["python", "-m", "w"],
        "args": ["--out=$(OUT)/r.csv", "--tmp=/scratch", "--termination-log=/dev/termination-log", "--c=/etc/app"],
        "env": [{"name": "OUT", "value": "/exports/run1"}, {"name": "PATH", "value": "/usr/bin"}],
        "workingDir": "/exports",
        "volumeMounts": [
            {"name": "out", "mountPath": "/exports"},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "conf", "mountPath": "/etc/app", "subPath": "sub"},
        ],
    }
    term = state / "pods/ns/p/main.termination-log"
    spec = launch_spec(
        r,
        container,
        termination_file=term,
        base_env={"PATH": "/bin", "HOME": "/h"},
        bin_dir="/venv/bin",
        default_cwd=tmp_path,
    )
    assert spec.argv == [
        "python",
        "-m",
        "w",
        f"--out={state}/volumes/ns/out/run1/r.csv",
        f"--tmp={state}/pods/ns/p/volumes/scratch",
        f"--termination-log={term}",
        f"--c={state}/pods/ns/p/volumes/conf/sub",
    ]
    assert spec.env["OUT"] == f"{state}/volumes/ns/out/run1"
    assert spec.env["PATH"] == "/venv/bin:/usr/bin"
    assert spec.env["HOME"] == "/h"
    assert spec.cwd == str(state / "volumes/ns/out")


def test_missing_claim_blocks_volume_setup(tmp_path):
    pod = dict(POD, spec=dict(POD["spec"], volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "gone"}}]))
    with pytest.raises(VolumeError, match='persistentvolumeclaim "gone" not found'):
        resolver(tmp_path, pod).setup_volumes()


def test_image_entrypoint_is_not_supported(tmp_path):
    with pytest.raises(ContainerConfigError, match="explicit `command`"):
        launch_spec(
            resolver(tmp_path),
            {"name": "main", "args": ["x"]},
            termination_file=tmp_path / "t",
            base_env={},
            bin_dir="/b",
            default_cwd=tmp_path,
        )
