"""Operator settings: env and flags, defaults, errors naming the variable."""

import pytest

from exportjob.controller.settings import SettingsError, load_settings


def test_defaults():
    settings = load_settings([], {})
    assert (settings.max_concurrent, settings.clusterwide, settings.default_claim) == (5, True, None)


def test_env_then_flags_win():
    env = {"EXPORTJOB_MAX_CONCURRENT": "3", "EXPORTJOB_NAMESPACES": "a, b", "EXPORTJOB_DEFAULT_CLAIM": "exports"}
    settings = load_settings(["--max-concurrent", "7"], env)
    assert (settings.max_concurrent, settings.namespaces, settings.clusterwide) == (7, ["a", "b"], False)


def test_errors_name_the_variable_or_flag():
    with pytest.raises(SettingsError, match="EXPORTJOB_MAX_CONCURRENT"):
        load_settings([], {"EXPORTJOB_MAX_CONCURRENT": "0"})
    with pytest.raises(SettingsError, match="--job-backoff-limit"):
        load_settings(["--job-backoff-limit", "many"], {})


def test_empty_optional_values_mean_unset():
    assert load_settings([], {"EXPORTJOB_DEFAULT_CLAIM": "", "EXPORTJOB_WORKER_MEMORY_LIMIT": ""}).default_claim is None
