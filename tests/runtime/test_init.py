"""Importing the runtime makes torch's OpenMP workers wait passively, unless told otherwise."""

from __future__ import annotations

import os
import subprocess
import sys


def omp_policy(env: dict[str, str]) -> str:
    code = "import os, chorusline.runtime; print(os.environ.get('OMP_WAIT_POLICY'))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def test_passive_by_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert omp_policy(env) == "PASSIVE"


def test_an_explicit_policy_is_kept() -> None:
    assert omp_policy({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
